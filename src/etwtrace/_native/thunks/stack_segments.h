// stack_segments.h - fresh C stack for deep Python recursion under the eval-frame hook.
//
// From CPython 3.11 on, a Python-to-Python call is inlined in the eval loop and uses no C
// stack, so a program may recurse as deep as its recursion limit allows (100,000 levels and
// more) on a thread's ordinary stack. Under a PEP 523 hook every Python call is a C call
// (interpreter -> hook -> thunk -> _PyEval_EvalFrameDefault), about 0.5-1 KB of C stack per
// level, and CPython has no stack-pointer check of its own (3.12/3.13 count C levels instead,
// a count compat.h credits back for hooked frames, see stack_mode.cpp). So the hook checks the
// stack pointer on every call; when less than a reserve is left, the call continues on a fresh
// segment (mmap'd, a guard page below it), and returns to the old stack when it returns.
// The reserve is what the thread has for C recursion at that point: half its stack, at most
// 4 MB, the room an untraced program has there.
//
// Segments are kept per thread as a stack: one spare is kept mapped when a call returns (a
// recursion going up and down across a boundary does not map and unmap every time), the rest
// are unmapped. A thread's segments are unmapped when it exits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "thunks/thunk.h"

namespace etwtrace::thunks {

// Lowest stack pointer at which a hooked call may run on the current stack: UINTPTR_MAX until
// learn_stack_floor() ran on this thread (so the first check fails and learns it). Initial-exec
// TLS, so the hot-path check is one segment-relative load and a compare, no call.
extern thread_local uintptr_t t_stack_floor __attribute__((tls_model("initial-exec")));

inline bool stack_has_room() { return stack_pointer() >= t_stack_floor; }

// Slow path of stack_has_room(): learns this thread's floor if it is not known yet, then
// answers again.
bool stack_has_room_slow();

// Calls fn(arg) on a fresh segment; false (fn not called) if no segment could be mapped.
bool call_on_fresh_segment(void (*fn)(void*), void* arg);

// Segments mapped now by all threads, and the most ever mapped at once (technical info).
size_t segments_mapped();
size_t segments_peak();

}  // namespace etwtrace::thunks
