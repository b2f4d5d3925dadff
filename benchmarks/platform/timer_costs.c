// timer_costs.c - what this machine's kernel charges the in-process sampler, measured without
// Python: the cost of one perf task-clock overflow delivered as a signal (the sampler's
// sample, less its own stack walk), and the cost a sampling task-clock adds to each context
// switch of its thread. Built and run by bench_platform.py; see docs/sampler.md.
//
//   timer_costs signal PERIOD_NS LOOP   LOOP: "compute" (registers only) or "memory" (64 MB)
//       prints: thread_cpu_s signals
//   timer_costs switch PERIOD_NS CPUS   PERIOD_NS 0: no event; -1: a counting event only
//       prints: round_trip_us
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int event_fd = -1;
static uint64_t period_ns;
static volatile long signals;

static double clock_s(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// As the sampler's handler re-arms its event: the period restarted, then one more overflow.
static void on_overflow(int sig, siginfo_t* info, void* context) {
    (void)sig, (void)info, (void)context;
    ++signals;
    uint64_t period = period_ns;
    ioctl(event_fd, PERF_EVENT_IOC_PERIOD, &period);
    ioctl(event_fd, PERF_EVENT_IOC_REFRESH, 1);
}

// The sampler's event: task-clock of this thread, with the kernel call chain, its overflow a
// real-time signal to this thread.
static int open_task_clock(int64_t period, int with_signal) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.sample_period = period > 0 ? (uint64_t)period : 0;
    attr.disabled = with_signal;
    attr.exclude_hv = 1;
    attr.wakeup_events = 1;
    attr.sample_type = PERF_SAMPLE_CALLCHAIN;
    attr.exclude_callchain_user = 1;
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        perror("perf_event_open");
        exit(2);
    }
    if (with_signal) {
        mmap(NULL, 2 * (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_overflow;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigaction(SIGRTMIN + 4, &sa, NULL);
        struct f_owner_ex owner = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
        fcntl(fd, F_SETFL, O_ASYNC);
        fcntl(fd, F_SETSIG, SIGRTMIN + 4);
        fcntl(fd, F_SETOWN_EX, &owner);
        event_fd = fd;
        ioctl(fd, PERF_EVENT_IOC_REFRESH, 1);
    }
    return fd;
}

static int signal_cost(int64_t period, const char* loop) {
    size_t size = (size_t)64 << 20;
    volatile unsigned char* memory = malloc(size);
    memset((void*)memory, 1, size);
    period_ns = (uint64_t)period;
    if (period > 0) {
        open_task_clock(period, 1);
    }
    double start = clock_s(CLOCK_THREAD_CPUTIME_ID);
    uint64_t x = 1;
    if (strcmp(loop, "memory") == 0) {
        for (int round = 0; round < 100; ++round) {
            for (size_t k = 0; k < size; k += 448) {
                x += memory[(k * 2654435761u) % size];
                memory[(k * 40503u) % size]++;
            }
        }
    } else {
        volatile uint64_t y = 1;
        for (long k = 0; k < 300000000L; ++k) {
            y = y * 6364136223846793005ull + 1442695040888963407ull;
        }
        x = y;
    }
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - start;
    printf("%.6f %ld %d\n", cpu, signals, (int)(x & 1));
    return 0;
}

enum { kRoundTrips = 20000 };
static int to_other[2], to_main[2];
static int64_t switch_period;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void* other_thread(void* cpu) {
    pin((int)(intptr_t)cpu);
    if (switch_period != 0) {
        open_task_clock(switch_period, 0);
    }
    char c;
    for (int i = 0; i < kRoundTrips; ++i) {
        if (read(to_other[0], &c, 1) != 1 || write(to_main[1], &c, 1) != 1) {
            break;
        }
    }
    return NULL;
}

// Two threads passing a byte back and forth through pipes: two context switches per round
// trip, on one CPU or across two.
static int switch_cost(int64_t period, int cpus) {
    switch_period = period;
    if (pipe(to_other) != 0 || pipe(to_main) != 0) {
        return 2;
    }
    pin(0);
    pthread_t thread;
    pthread_create(&thread, NULL, other_thread, (void*)(intptr_t)(cpus > 1 ? 1 : 0));
    if (period != 0) {
        open_task_clock(period, 0);
    }
    char c = 1;
    double start = clock_s(CLOCK_MONOTONIC);
    for (int i = 0; i < kRoundTrips; ++i) {
        if (write(to_other[1], &c, 1) != 1 || read(to_main[0], &c, 1) != 1) {
            break;
        }
    }
    double elapsed = clock_s(CLOCK_MONOTONIC) - start;
    pthread_join(thread, NULL);
    printf("%.3f\n", elapsed / kRoundTrips * 1e6);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && strcmp(argv[1], "signal") == 0) {
        return signal_cost(atoll(argv[2]), argv[3]);
    }
    if (argc == 4 && strcmp(argv[1], "switch") == 0) {
        return switch_cost(atoll(argv[2]), atoi(argv[3]));
    }
    fprintf(stderr, "usage: timer_costs signal PERIOD_NS compute|memory | switch PERIOD_NS CPUS\n");
    return 2;
}
