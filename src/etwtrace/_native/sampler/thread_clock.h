// thread_clock.h - the per-thread source of the sampler's signals (no Python.h).
//
// CPU time: perf_event_open(PERF_COUNT_SW_TASK_CLOCK) on the thread, its overflow delivered as
// `signal` to that very thread (O_ASYNC, F_SETSIG, F_SETOWN_EX with F_OWNER_TID); the event
// disarms itself at each overflow (PERF_EVENT_IOC_REFRESH 1) and the handler re-arms it
// (rearm()). Where perf events are not permitted (perf_event_paranoid, seccomp), a POSIX timer
// on the thread's CPU clock with SIGEV_THREAD_ID. Wall time: a POSIX timer on CLOCK_MONOTONIC
// with SIGEV_THREAD_ID, which also fires while the thread sleeps or blocks. Where kernel
// profiling is permitted (perf_event_paranoid <= 1, or root), the event also records the
// kernel part of the call chain at each overflow into a two-page ring the handler reads, which
// also gives the overflow's time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>

#include "format/trace_format.h"

namespace etwtrace::sampler {

enum class ClockChoice { Cpu, Wall };
enum class SourceChoice { Auto, Perf, Timer };

struct ThreadClock {
    int perf_fd = -1;
    void* perf_ring = nullptr;  // the perf event's ring (kernel call chains), when permitted
    size_t perf_ring_size = 0;
    timer_t timer{};
    bool has_timer = false;
    format::SampleSource source = format::SampleSource::PerfTaskClock;
    uint64_t period_ns = 0;
    bool kernel_chains = false;  // the perf event records the kernel's call chain
    // Written by the thread's own handler only (rearm()):
    mutable uint64_t rearm_cost_ns = 0;    // the last re-arm's two ioctls
    mutable uint64_t rearmed_at_ns = 0;    // when the last re-arm ended
    mutable uint64_t armed_period_ns = 0;  // the period it set
    mutable uint64_t fires_late_ns = 0;    // how late the timer fires, on average

    // Starts delivering `signal` to thread `tid` (of this process) every `period_ns` of its
    // CPU time (or wall time). Returns 0, or an errno value. `perf_denied` is set when perf
    // events were refused and the timer fallback is used.
    int arm(pid_t tid, int signal, uint64_t period_ns, ClockChoice clock, SourceChoice source_choice,
            bool& perf_denied);
    // Async-signal-safe: lets the next period's signal come (perf's event disarms itself).
    // Given the overflow's time (CLOCK_MONOTONIC ns), the next period is shortened by what the
    // event did not count or counted late: the time from the overflow to now, the re-arm
    // itself (the last one's, measured) and how late the timer fires (averaged), when together
    // they are at most an eighth of a period, so that a sample comes per period of the
    // thread's whole CPU time. Else (a high rate, a sample that cost much, no overflow time)
    // the period restarts whole, leaving the program a full period of its own.
    void rearm(uint64_t overflow_ns = 0) const;
    // Async-signal-safe: reads the latest perf sample and consumes the ring: its time
    // (CLOCK_MONOTONIC ns, 0 when there is none) and its kernel call chain, leaf first, into
    // `out` (the thread was in the kernel at the overflow: a system call, a page fault; none
    // where kernel call chains are not permitted).
    struct Overflow {
        uint64_t time_ns = 0;
        size_t kernel_frames = 0;
    };
    Overflow read_overflow(uint64_t* out, size_t max) const;
    // Stops the signals. Idempotent.
    void disarm();
    // In a fork() child: the perf event belongs to a thread of the parent (timers are not inherited).
    void forget_after_fork();
};

}  // namespace etwtrace::sampler
