// native_unwind.h - the native call stack of an interrupted thread, from its signal handler
// (no Python.h).
//
// libunwind's local unwinder (Debian's libunwind-dev) reads DWARF .eh_frame, so it follows
// code built without frame pointers (CPython's own builds). Per-thread caching keeps it free of
// locks and allocation in the handler; it finds the objects' unwind tables through
// dl_iterate_phdr, whose lock is recursive: a thread interrupted inside the loader still
// proceeds. Without libunwind at build time, samples have no native frames.
#pragma once

#include <cstddef>
#include <cstdint>

namespace etwtrace::sampler {

// Whether this build unwinds native stacks.
bool native_unwind_available();
// Once, before any signal: caching per thread (lock-free in the handler).
void native_unwind_prepare();
// The instruction addresses of the interrupted code, leaf first, starting at the signal
// frame's context (`ucontext`, the handler's third argument). Async-signal-safe. Returns how
// many were written (at most `max`); `truncated` when the stack is deeper.
size_t unwind_native(void* ucontext, uint64_t* out, size_t max, bool& truncated);

}  // namespace etwtrace::sampler
