// thread_clock.h - the per-thread source of the sampler's signals (no Python.h).
//
// CPU time: perf_event_open(PERF_COUNT_SW_TASK_CLOCK) on the thread, its overflow delivered as
// `signal` to that very thread (O_ASYNC, F_SETSIG, F_SETOWN_EX with F_OWNER_TID); the event
// disarms itself at each overflow (PERF_EVENT_IOC_REFRESH 1) and the handler re-arms it
// (rearm()). Where perf events are not permitted (perf_event_paranoid, seccomp), a POSIX timer
// on the thread's CPU clock with SIGEV_THREAD_ID. Wall time: a POSIX timer on CLOCK_MONOTONIC
// with SIGEV_THREAD_ID, which also fires while the thread sleeps or blocks. Where kernel
// profiling is permitted (perf_event_paranoid <= 1, or root), the event also records the
// kernel part of the call chain at each overflow into a two-page ring the handler reads.
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
    // The thread's CPU time (CLOCK_THREAD_CPUTIME_ID, ns) at which its next sample is due: set
    // by arm(), then advanced one period per sample by the thread's own handler (rearm()).
    mutable uint64_t next_due_cpu_ns = 0;

    // Starts delivering `signal` to thread `tid` (of this process) every `period_ns` of its
    // CPU time (or wall time). Returns 0, or an errno value. `perf_denied` is set when perf
    // events were refused and the timer fallback is used.
    int arm(pid_t tid, int signal, uint64_t period_ns, ClockChoice clock, SourceChoice source_choice,
            bool& perf_denied);
    // Async-signal-safe, in the thread's own handler: lets the next period's signal come (perf's
    // event disarms itself at its overflow). With `catch_up`, the next period is what is left
    // until the next sample is due by the thread's CPU time: the task-clock does not count the
    // time from its overflow to this re-arm (the handler's delay), the re-arm's own ioctls,
    // the timer firing late, nor the kernel's work at each context switch (reprogramming the
    // event's timer: ~7 us here), all of which the thread's CPU time does; left alone, a
    // thread switching often got 92 % of its samples, a CPU-bound one 96 %. When that would
    // shorten the period by more than a quarter (a high rate, or a sample that cost much), or
    // without `catch_up`, the period restarts whole and the debt is forgotten: the program
    // keeps a full period of its own.
    void rearm(bool catch_up) const;
    // Async-signal-safe: reads the latest perf sample and consumes the ring: its kernel call
    // chain, leaf first, into `out`; returns how many frames (the thread was in the kernel at
    // the overflow: a system call, a page fault; none where kernel call chains are not
    // permitted).
    size_t read_kernel_chain(uint64_t* out, size_t max) const;
    // Stops the signals. Idempotent.
    void disarm();
    // In a fork() child: the perf event belongs to a thread of the parent (timers are not inherited).
    void forget_after_fork();
};

}  // namespace etwtrace::sampler
