#include "sampler/thread_clock.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "platform/linux.h"

namespace etwtrace::sampler {
namespace {

// The kernel's per-thread CPU clock id (what glibc's pthread_getcpuclockid computes for a tid).
clockid_t thread_cpu_clock(pid_t tid) {
    return static_cast<clockid_t>((~static_cast<unsigned int>(tid) << 3) | 6u);  // CPUCLOCK_SCHED | PERTHREAD
}

// A thread's CPU time in ns (0 if it cannot be read: the thread is gone).
uint64_t cpu_time_ns(clockid_t clock) {
    timespec ts{};
    if (clock_gettime(clock, &ts) != 0) {
        return 0;
    }
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

int open_task_clock(pid_t tid, uint64_t period_ns, bool exclude_kernel) {
    perf_event_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.sample_period = period_ns;
    attr.disabled = 1;
    attr.exclude_kernel = exclude_kernel ? 1 : 0;
    attr.exclude_hv = 1;
    attr.wakeup_events = 1;
    if (!exclude_kernel) {
        attr.sample_type = PERF_SAMPLE_CALLCHAIN;
        attr.exclude_callchain_user = 1;  // the handler unwinds user space itself, with more context
    }
    return static_cast<int>(syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

int arm_timer(ThreadClock& c, pid_t tid, int signal, uint64_t period_ns, clockid_t clock) {
    sigevent ev;
    std::memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = signal;
    ev._sigev_un._tid = tid;
    if (timer_create(clock, &ev, &c.timer) != 0) {
        return errno;
    }
    c.has_timer = true;
    itimerspec spec{};
    spec.it_interval.tv_sec = static_cast<time_t>(period_ns / 1000000000u);
    spec.it_interval.tv_nsec = static_cast<long>(period_ns % 1000000000u);
    spec.it_value = spec.it_interval;
    if (timer_settime(c.timer, 0, &spec, nullptr) != 0) {
        int error = errno;
        c.disarm();
        return error;
    }
    return 0;
}

}  // namespace

int ThreadClock::arm(pid_t tid, int signal, uint64_t period_ns, ClockChoice clock, SourceChoice source_choice,
                     bool& perf_denied) {
    perf_denied = false;
    if (clock == ClockChoice::Wall) {
        source = format::SampleSource::TimerWall;
        return arm_timer(*this, tid, signal, period_ns, CLOCK_MONOTONIC);
    }
    if (source_choice != SourceChoice::Timer) {
        // The first sample is due a period into the thread's CPU time, counted from its start:
        // a thread armed as it starts has already run its bootstrap. One armed later (the main
        // thread at enable(), a thread found by a rescan) gets a whole first period.
        const uint64_t cpu = cpu_time_ns(thread_cpu_clock(tid));
        const uint64_t due = cpu != 0 && cpu <= period_ns / 4 ? period_ns : cpu + period_ns;
        const uint64_t first_period = cpu != 0 ? due - cpu : period_ns;
        bool user_only = false;
        int fd = open_task_clock(tid, first_period, false);
        if (fd < 0 && (errno == EACCES || errno == EPERM)) {
            user_only = true;
            fd = open_task_clock(tid, first_period, true);  // perf_event_paranoid 2: user space only
        }
        if (fd >= 0) {
            f_owner_ex owner{F_OWNER_TID, tid};
            if (fcntl(fd, F_SETFL, O_ASYNC) == 0 && fcntl(fd, F_SETSIG, signal) == 0 &&
                fcntl(fd, F_SETOWN_EX, &owner) == 0) {
                // Everything the handler uses is in place before the event runs: at a short
                // period its first signal can come before the next statement, and a handler
                // that could not re-arm the event (perf_fd not set yet) stopped the sampling.
                long page = sysconf(_SC_PAGESIZE);
                size_t size = static_cast<size_t>(page) * 2;  // metadata page + one data page
                void* ring = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (ring != MAP_FAILED) {
                    perf_ring = ring;
                    perf_ring_size = size;
                }
                perf_fd = fd;
                this->period_ns = period_ns;
                kernel_chains = perf_ring != nullptr && !user_only;
                source = format::SampleSource::PerfTaskClock;
                next_due_cpu_ns = due;
                if (ioctl(fd, PERF_EVENT_IOC_REFRESH, 1) == 0) {
                    return 0;
                }
                const int refresh_error = errno;
                perf_fd = -1;
                if (perf_ring) {
                    munmap(perf_ring, perf_ring_size);
                    perf_ring = nullptr;
                    perf_ring_size = 0;
                }
                errno = refresh_error;
            }
            int error = errno;
            ::close(fd);
            if (error == ESRCH) {
                return error;  // the thread is gone
            }
        } else if (errno == ESRCH) {
            return ESRCH;
        }
        if (source_choice == SourceChoice::Perf) {
            return errno ? errno : EACCES;
        }
        perf_denied = true;
    }
    source = format::SampleSource::TimerThreadCpu;
    return arm_timer(*this, tid, signal, period_ns, thread_cpu_clock(tid));
}

void ThreadClock::rearm(bool catch_up) const {
    if (perf_fd < 0) {
        return;
    }
    const uint64_t now = cpu_time_ns(CLOCK_THREAD_CPUTIME_ID);
    const uint64_t due = next_due_cpu_ns + period_ns;
    uint64_t period = period_ns;
    if (catch_up && now != 0 && due > now && due - now >= period_ns - period_ns / 4 &&
        due - now <= period_ns + period_ns / 4) {
        period = due - now;
        next_due_cpu_ns = due;
    } else {
        next_due_cpu_ns = now + period_ns;
    }
    ioctl(perf_fd, PERF_EVENT_IOC_PERIOD, &period);  // resets what is left of the period
    ioctl(perf_fd, PERF_EVENT_IOC_REFRESH, 1);
}

size_t ThreadClock::read_kernel_chain(uint64_t* out, size_t max) const {
    size_t frames = 0;
    if (!perf_ring) {
        return frames;
    }
    auto* meta = static_cast<perf_event_mmap_page*>(perf_ring);
    const auto* data = static_cast<const uint8_t*>(perf_ring) + meta->data_offset;
    const uint64_t data_size = meta->data_size;
    const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    // Records may wrap around the end of the data area: read them word by word.
    auto word = [&](uint64_t at) {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v |= static_cast<uint64_t>(data[(at + static_cast<uint64_t>(i)) % data_size]) << (8 * i);
        }
        return v;
    };
    while (tail + sizeof(perf_event_header) <= head) {
        uint64_t h = word(tail);
        uint32_t type = static_cast<uint32_t>(h);
        uint16_t size = static_cast<uint16_t>(h >> 48);
        if (size < sizeof(perf_event_header) || tail + size > head) {
            break;
        }
        if (type == PERF_RECORD_SAMPLE) {  // the latest one wins
            frames = 0;
            // The record is the header, then PERF_SAMPLE_CALLCHAIN: nr, then nr addresses.
            const uint64_t nr = kernel_chains && size >= 16 ? word(tail + 8) : 0;
            for (uint64_t i = 0; i < nr && 16 + 8 * i < size; ++i) {
                uint64_t ip = word(tail + 16 + 8 * i);
                if (ip >= static_cast<uint64_t>(PERF_CONTEXT_MAX)) {
                    continue;  // a context marker (PERF_CONTEXT_KERNEL)
                }
                if (frames < max) {
                    out[frames++] = ip;
                }
            }
        }
        tail += size;
    }
    __atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
    return frames;
}

void ThreadClock::disarm() {
    if (perf_ring) {
        munmap(perf_ring, perf_ring_size);
        perf_ring = nullptr;
    }
    if (perf_fd >= 0) {
        ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0);
        ::close(perf_fd);
        perf_fd = -1;
    }
    if (has_timer) {
        timer_delete(timer);
        has_timer = false;
    }
}

void ThreadClock::forget_after_fork() {
    if (perf_ring) {
        munmap(perf_ring, perf_ring_size);
        perf_ring = nullptr;
    }
    if (perf_fd >= 0) {
        ::close(perf_fd);
        perf_fd = -1;
    }
    has_timer = false;  // a timer is the parent's: fork() does not copy it
}

}  // namespace etwtrace::sampler
