// sampler_state.h - what the sampler's two files share.
//
//   sampler_signal.cpp   the signal handler and the table it finds its thread in
//   sampler_mode.cpp     the sampled threads, the drain thread, enable/
//                        disable, fork and exit: the TracerMode "sampler"
//   sampler_thread_start.cpp  threads started by `threading` register themselves
//   sampler_resolve.cpp  turning a thread's raw samples (code pointers, instructions) into
//                        functions, lines and shared stack nodes in the trace file
//
// Everything here but the ring's producer side is used under the GIL.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "python/compat.h"
#include "sampler/sample_ring.h"
#include "sampler/thread_clock.h"
#include "trace/trace_writer.h"

namespace etwtrace::py::sampling {

using etwtrace::sampler::SampleRing;
using etwtrace::sampler::ThreadClock;

struct SampledThread {
    pid_t tid = 0;
    PyThreadState* tstate = nullptr;  // identifies the thread in the interpreter's list
    ThreadClock clock;
    std::atomic<bool> in_handler{false};  // the retiring drain waits for a running handler
    uint64_t last_sample_cost = 0;  // in ticks, the handler's own (see on_sample_signal)
    trace::ThreadBuffer buffer;
    SampleRing ring;
};

struct Counters {
    uint64_t samples = 0;            // written to the trace
    uint64_t dropped = 0;            // not taken: ring full (the drain fell behind), or a timer's
                                     // signal while samples were eating the thread's time
    uint64_t unresolved_frames = 0;  // code object gone between the sample and its resolution
    uint64_t truncated = 0;          // deeper than kMaxSampledFrames
    uint64_t unmerged = 0;           // native and Python stacks did not pair up: Python frames only
};

// ---- sampler_signal.cpp: the signal, its handler and the tid -> thread table ----

struct Slot {
    std::atomic<pid_t> tid{0};
    std::atomic<SampledThread*> thread{nullptr};
    // Ring words the handler wrote since the last drain: the drain thread reads these without
    // the GIL, to drain early only when some ring is filling.
    std::atomic<uint32_t> words_since_drain{0};
};
inline constexpr size_t kSlots = 4096;  // live sampled threads at most

extern std::atomic<bool> g_active;  // read by handlers: sample at all?
extern int g_signal;                // the real-time signal in use (0 before install_signal)
extern etwtrace::sampler::ClockChoice g_clock;
extern bool g_native;               // unwind native stacks too (option "native")
extern uint64_t g_half_period_ticks; // half the sampling period, in trace ticks

// The sampler's signal blocked on this thread while it lives: our own work on a program's
// thread (a drain) is not sampled as the program's.
class SamplerSignalBlocked {
public:
    SamplerSignalBlocked() {
        sigset_t sampler_signal;
        sigemptyset(&sampler_signal);
        sigaddset(&sampler_signal, g_signal);
        pthread_sigmask(SIG_BLOCK, &sampler_signal, &saved_);
    }
    ~SamplerSignalBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    SamplerSignalBlocked(const SamplerSignalBlocked&) = delete;
    SamplerSignalBlocked& operator=(const SamplerSignalBlocked&) = delete;

private:
    sigset_t saved_;
};
extern __attribute__((tls_model("initial-exec"))) thread_local pid_t t_tid;    // the thread's cached kernel id (0: not read yet)
extern __attribute__((tls_model("initial-exec"))) thread_local bool t_requested;  // the signal being raised is _mark_stack's

Slot* find_slot(pid_t tid);                           // async-signal-safe
Slot* insert_slot(pid_t tid, SampledThread* thread);  // drain side
void clear_slots();                                   // fork() child
uint32_t fullest_slot_words();                        // any thread, no GIL
void reset_slot_words();                              // before a complete drain
// Installs the handler on `requested`, or on the first free real-time signal from SIGRTMIN+4
// (requested == 0). False with OSError set when there is none.
bool install_signal(int requested);

// Counts code objects deallocated since the sampler was installed (the handler records it with
// each sample; the resolver compares). Written under the GIL, read by handlers with a plain load.
extern std::atomic<uint64_t> g_code_deaths;

// sampler_mode.cpp: under the GIL, the calling thread is sampled from now on (if enabled).
void register_current_thread();

// sampler_thread_start.cpp: threads started through `threading` register themselves first.
bool install_thread_start_hook();  // enable(); True without a hook if threading is not imported
void remove_thread_start_hook();   // disable()

// sampler_resolve.cpp
bool install_code_death_hook();      // once per process
void set_drain_before_death(void (*drain)());  // what a dying code object runs first
void resolver_reset();               // a new trace file: no definitions or nodes written yet
void resolver_stop();                // disable(): stop logging deaths
void resolver_clear_deaths();        // after a complete drain: older deaths cannot matter
// Consumes `t`'s ring into its buffer (definitions, nodes, samples); `extra_flags` are added
// to every sample's flags. A sample with kernel frames met while the kernel's symbols are not
// loaded (loading them here would stall the program) asks for them
// (kernel_symbols_requested()) and, by `kernel_names`, either waits in the ring with the
// samples after it (a drain round), or is written at once, its kernel frames defined by a
// later drain once the names are loaded (a drain that cannot wait: before a code object dies,
// before a mark, as a thread is retired). True when the ring was consumed to the head it saw;
// after a drain that left samples behind, the death log must be kept.
enum class KernelNames { WaitInRing, NameLater };
bool drain_ring(SampledThread& t, uint8_t extra_flags, Counters& counters,
                KernelNames kernel_names = KernelNames::NameLater);
bool kernel_symbols_requested();  // a drain met kernel frames before their names were loaded
// True when a sample of `t`'s ring or one already written still needs the kernel's names: the
// last drains (disable()) load them first.
bool kernel_names_needed(SampledThread& t);

// The launcher runs the target with its own Python frames set aside (main_context.cpp), but
// their eval-loop calls stay on the C stack: `calls` of them under `tstate`'s frames, which
// the merge of native and Python frames then skips (they stand for no frame of the program).
void set_hidden_eval_calls(PyThreadState* tstate, size_t calls);

}  // namespace etwtrace::py::sampling
