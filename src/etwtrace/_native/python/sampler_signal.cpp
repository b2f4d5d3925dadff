// sampler_signal.cpp - the sampler's signal: its handler (async-signal-safe), the table the
// handler finds its thread in, and choosing and installing the signal.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "python/sampler_state.h"
#include "sampler/native_unwind.h"
#include "trace/clock.h"

namespace etwtrace::py::sampling {

using etwtrace::sampler::ClockChoice;

std::atomic<bool> g_active{false};
int g_signal = 0;
ClockChoice g_clock = ClockChoice::Cpu;
bool g_native = true;
uint64_t g_half_period_ticks = 0;
__attribute__((tls_model("initial-exec"))) constinit thread_local pid_t t_tid = 0;
__attribute__((tls_model("initial-exec"))) constinit thread_local bool t_requested = false;

namespace {

constexpr int kFirstSignalOffset = 4;  // SIGRTMIN + 4
bool g_signal_installed = false;

}  // namespace

// ---- the table the signal handler finds its thread in (tid -> SampledThread) --------------

namespace {
Slot g_slots[kSlots];
}  // namespace

Slot* find_slot(pid_t tid) {
    size_t i = static_cast<size_t>(tid) & (kSlots - 1);
    for (size_t probes = 0; probes < kSlots; ++probes, i = (i + 1) & (kSlots - 1)) {
        pid_t t = g_slots[i].tid.load(std::memory_order_acquire);
        if (t == tid) {
            return &g_slots[i];
        }
        if (t == 0) {
            return nullptr;
        }
    }
    return nullptr;
}

// Drain side only. Reuses a retired slot (thread == nullptr) along the probe path.
Slot* insert_slot(pid_t tid, SampledThread* thread) {
    size_t i = static_cast<size_t>(tid) & (kSlots - 1);
    for (size_t probes = 0; probes < kSlots; ++probes, i = (i + 1) & (kSlots - 1)) {
        pid_t t = g_slots[i].tid.load(std::memory_order_relaxed);
        if (t == tid || t == 0 || g_slots[i].thread.load(std::memory_order_relaxed) == nullptr) {
            g_slots[i].thread.store(nullptr, std::memory_order_seq_cst);
            g_slots[i].tid.store(tid, std::memory_order_seq_cst);
            g_slots[i].thread.store(thread, std::memory_order_seq_cst);
            return &g_slots[i];
        }
    }
    return nullptr;
}

void clear_slots() {
    for (Slot& s : g_slots) {
        s.thread.store(nullptr, std::memory_order_relaxed);
        s.tid.store(0, std::memory_order_relaxed);
        s.words_since_drain.store(0, std::memory_order_relaxed);
    }
}

uint32_t fullest_slot_words() {
    uint32_t most = 0;
    for (const Slot& s : g_slots) {
        most = std::max(most, s.words_since_drain.load(std::memory_order_relaxed));
    }
    return most;
}

void reset_slot_words() {
    for (Slot& s : g_slots) {
        s.words_since_drain.store(0, std::memory_order_relaxed);
    }
}

// ---- the signal handler: async-signal-safe ------------------------------------------------

namespace {

void on_sample_signal(int, siginfo_t* info, void* ucontext) {
    int saved_errno = errno;
    if (!g_active.load(std::memory_order_relaxed)) {
        errno = saved_errno;
        return;
    }
    pid_t tid = t_tid;
    if (tid == 0) {
        tid = t_tid = static_cast<pid_t>(syscall(SYS_gettid));
    }
    Slot* slot = find_slot(tid);
    SampledThread* t = slot ? slot->thread.load(std::memory_order_acquire) : nullptr;
    if (t) {
        t->in_handler.store(true, std::memory_order_seq_cst);
        if (slot->thread.load(std::memory_order_seq_cst) == t) {
            const uint64_t entered = trace::ticks();
            // A perf event disarms itself at its overflow and is re-armed here, its period
            // restarted: otherwise the period counts the time until the overflow's deferred
            // disable ran (~45 us late on this VM), and at 20 kHz it fired six times per period
            // of the program's own time. The restarted period catches up with the thread's CPU
            // time when the debt is small against a period (rearm()).
            // It is re-armed on entry, so a sample's own cost counts
            // towards the next period as the thread's CPU time does; but when the last sample
            // cost more than half a period, the program would be left little or no time of its
            // own (at 20 kHz it ran hundreds of times slower), so it is re-armed once this
            // sample is taken: the program then gets a full period between two samples. A
            // timer's signal, which comes regardless, is skipped then (counted as dropped).
            const bool saturated = t->last_sample_cost > g_half_period_ticks;
            const bool perf_overflow = info && info->si_code > 0;  // POLL_IN/POLL_HUP
            // The perf record of this overflow: the kernel's call chain then.
            uint64_t kernel[etwtrace::sampler::kMaxKernelFrames];
            size_t kernel_frames = 0;
            if (perf_overflow) {
                kernel_frames = t->clock.read_kernel_chain(kernel, etwtrace::sampler::kMaxKernelFrames);
            }
            if (perf_overflow && !saturated) {
                t->clock.rearm(/*catch_up=*/true);
            }
            PyThreadState* tstate = compat::sampler_thread_state();
            SampleRing& ring = t->ring;
            if (saturated && !perf_overflow && !t_requested) {
                ring.dropped.fetch_add(1, std::memory_order_relaxed);
            } else if (tstate && ring.has_room()) {
                uint64_t frames[2 * etwtrace::sampler::kMaxSampledFrames];
                bool truncated = false;
                size_t n = compat::walk_sampled_frames(tstate, frames, etwtrace::sampler::kMaxSampledFrames, truncated);
                uint64_t native[etwtrace::sampler::kMaxNativeFrames];
                bool native_truncated = false;
                bool native_skipped = false;  // the dynamic loader is busy: see native_unwind.h
                size_t native_count =
                    g_native ? etwtrace::sampler::unwind_native(ucontext, native, etwtrace::sampler::kMaxNativeFrames,
                                                                native_truncated, native_skipped)
                             : 0;
                if (native_truncated) {
                    native_count = 0;  // its root frames are cut: a merge would be guesswork
                }
                // A perf overflow in the kernel: its call chain goes leafward of the user stack.
                size_t kernel_count = kernel_frames;
                if (native_count == 0) {
                    kernel_count = 0;
                }
                uint8_t flags = (truncated ? format::kSampleTruncated : 0) |
                                (native_truncated || native_skipped ? format::kSampleUnmerged : 0) |
                                (g_clock == ClockChoice::Wall ? format::kSampleWallClock : 0) |
                                (t_requested ? format::kSampleRequested : 0);
                uint64_t h = ring.head.load(std::memory_order_relaxed);
                ring.at(h) = static_cast<uint64_t>(n) | static_cast<uint64_t>(flags) << 16 |
                             static_cast<uint64_t>(kernel_count + native_count) << 24;
                ring.at(h + 1) = trace::ticks();
                ring.at(h + 2) = g_code_deaths.load(std::memory_order_acquire);
                for (size_t i = 0; i < 2 * n; ++i) {
                    ring.at(h + etwtrace::sampler::kHeaderWords + i) = frames[i];
                }
                uint64_t at = h + etwtrace::sampler::kHeaderWords + 2 * n;
                for (size_t i = 0; i < kernel_count; ++i) {
                    ring.at(at++) = kernel[i];
                }
                for (size_t i = 0; i < native_count; ++i) {
                    ring.at(at++) = native[i];
                }
                ring.head.store(at, std::memory_order_release);
                slot->words_since_drain.fetch_add(static_cast<uint32_t>(at - h), std::memory_order_relaxed);
            } else if (tstate) {
                ring.dropped.fetch_add(1, std::memory_order_relaxed);
            }
            if (perf_overflow && saturated) {
                t->clock.rearm(/*catch_up=*/false);
            }
            t->last_sample_cost = trace::ticks() - entered;
        }
        t->in_handler.store(false, std::memory_order_release);
    }
    errno = saved_errno;
}

}  // namespace

bool install_signal(int requested) {
    if (g_signal_installed) {
        return true;
    }
    int first = requested ? requested : SIGRTMIN + kFirstSignalOffset;
    int last = requested ? requested : SIGRTMAX;
    for (int sig = first; sig <= last; ++sig) {
        struct sigaction old {};
        if (sigaction(sig, nullptr, &old) != 0) {
            continue;
        }
        bool is_default = !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
        if (!is_default && !requested) {
            continue;  // the program (or a library) uses it
        }
        struct sigaction sa {};
        sa.sa_sigaction = on_sample_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, nullptr) == 0) {
            g_signal = sig;
            // Kept for the life of the process: a signal still pending after disable() must
            // find a handler (a real-time signal's default action ends the process).
            g_signal_installed = true;
            return true;
        }
    }
    PyErr_Format(PyExc_OSError, "etwtrace: no free real-time signal for the sampler (tried %d-%d)", first, last);
    return false;
}

}  // namespace etwtrace::py::sampling
