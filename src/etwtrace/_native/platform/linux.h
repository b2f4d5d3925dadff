// linux.h - the few Linux system facts several parts of the core need (no Python.h): the
// clocks perf and our trace files share, and the kernel thread id perf reports.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <ctime>
#include <thread>
#include <utility>

namespace etwtrace::platform {

// CLOCK_MONOTONIC in ns: the clock of `perf record -k 1`, jitdump records and trace files.
inline uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// CLOCK_REALTIME in ns: the wall-clock anchor of a trace file.
inline uint64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The calling thread's kernel id (gettid()), the thread id perf shows; glibc < 2.30 has no
// gettid() wrapper, hence the system call.
inline uint64_t thread_id() { return static_cast<uint64_t>(syscall(SYS_gettid)); }

// A thread of ours (trace writer, sampler drain) that no signal sent to the process can land
// on: it starts with every signal blocked (the mask is inherited, so there is no window). Else
// the kernel may deliver the program's SIGALRM, SIGINT or SIGCHLD to our thread, where
// CPython's handler only sets a flag: a main thread blocked in read() or sleep() would never be
// interrupted to run the program's handler, as it always is untraced. Faults still reach the
// thread that faults.
// `name` (at most 15 characters) is what top -H, ps -L and /proc/<pid>/task/<tid>/comm show
// for it: the user can tell our threads and their CPU time from the program's.
template <typename Function>
std::thread start_thread_without_signals(const char* name, Function&& function) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread thread(std::forward<Function>(function));
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_setname_np(thread.native_handle(), name);
    return thread;
}

}  // namespace etwtrace::platform
