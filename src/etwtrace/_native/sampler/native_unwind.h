// native_unwind.h - the native call stack of an interrupted thread, from its signal handler
// (no Python.h).
//
// libunwind's local unwinder (Debian's libunwind-dev) reads DWARF .eh_frame, so it follows
// code built without frame pointers (CPython's own builds). Per-thread caching keeps it free of
// allocation in the handler, but it finds an address's unwind table through dl_iterate_phdr,
// which takes the dynamic loader's lock: a thread interrupted while taking that lock (dlopen of
// an extension module, dlclose) and then taking it again from the handler hung the program
// for good, with every signal blocked (once in a few hundred sampled runs of an asyncio program
// at 5 kHz, importing _asyncio; within seconds of a dlopen/dlclose loop at 20 kHz). So no
// native stack is taken while that lock is held or being taken; those samples keep their
// Python frames only. Where the lock cannot be found, no native stacks are taken at all.
// Without libunwind at build time, samples have no native frames.
#pragma once

#include <cstddef>
#include <cstdint>

namespace etwtrace::sampler {

// Whether this build unwinds native stacks.
bool native_unwind_available();
// Once, before any signal: caching per thread, and where the loader's lock is. False when
// that lock could not be found: then unwind_native never unwinds.
bool native_unwind_prepare();
// The instruction addresses of the interrupted code, leaf first, starting at the signal
// frame's context (`ucontext`, the handler's third argument). Async-signal-safe. Returns how
// many were written (at most `max`); `truncated` when the stack is deeper; `skipped` (and 0)
// when the dynamic loader's lock is held.
size_t unwind_native(void* ucontext, uint64_t* out, size_t max, bool& truncated, bool& skipped);

}  // namespace etwtrace::sampler
