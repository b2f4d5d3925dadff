// clock.h - the per-event tick counter of the trace writer.
//
// Reading CLOCK_MONOTONIC costs ~20 ns even through the vDSO, more than the whole budget of an
// event. On x86-64 with an invariant TSC we stamp events with rdtsc (~7 ns) and record clock
// sync points (ticks, CLOCK_MONOTONIC ns) so the reader converts ticks back to nanoseconds.
#pragma once

#include <cstdint>

#include "format/trace_format.h"
#include "platform/linux.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace etwtrace::trace {

using platform::monotonic_ns;
using platform::realtime_ns;

// The tick source chosen once per process (see tick_kind()).
format::TickKind tick_kind();

// ticks() when reading it needs no call (the TSC): false otherwise. For hot paths that keep
// their common case free of calls, so that it saves no registers.
inline bool ticks_without_call(uint64_t& now) {
#if defined(__x86_64__)
    extern bool g_use_tsc;
    if (__builtin_expect(g_use_tsc, 1)) {
        now = __rdtsc();
        return true;
    }
#endif
    (void)now;
    return false;
}

inline uint64_t ticks() {
    uint64_t now;
    return ticks_without_call(now) ? now : monotonic_ns();
}

// Measures ticks per second against CLOCK_MONOTONIC (busy-waits about a millisecond once).
uint64_t ticks_per_second();

}  // namespace etwtrace::trace
