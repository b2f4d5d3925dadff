// sampler_mode.cpp - the in-process sampler: every thread is interrupted by a signal every
// period of its CPU time (or wall time), and the handler copies the thread's Python stack.
//
// No eval-frame hook and no profile function: between samples the program runs exactly as
// untraced. Per thread: a ThreadClock (sampler/thread_clock.h: perf task-clock with the
// overflow signal sent to that thread, or a POSIX timer where perf events are refused) and a
// lock-free ring (sampler/sample_ring.h) the signal handler fills with code pointers and
// instruction offsets. A drain thread takes the GIL every kDrainInterval (sooner when a ring
// fills or the thread list changes), registers threads that appeared (and retires those that ended) in the interpreter's thread list, and
// resolves the rings into the trace file (sampler_resolve.cpp). The signal is a real-time one
// (kFirstSignal upward, the first whose disposition is the default), installed with
// SA_RESTART, so the program's own SIGPROF/SIGALRM/SIGINT handlers are untouched and
// interrupted system calls restart (or, for those the kernel never restarts, return EINTR,
// which CPython retries, PEP 475).
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "platform/linux.h"
#include "python/function_registry.h"
#include "python/process_hooks.h"
#include "python/sampler_state.h"
#include "python/tracer_mode.h"
#include "sampler/kernel_symbols.h"
#include "sampler/native_unwind.h"
#include "trace/clock.h"

namespace etwtrace::py::sampling {
namespace {

using etwtrace::sampler::ClockChoice;
using etwtrace::sampler::SourceChoice;
using trace::TraceWriter;

constexpr uint64_t kDefaultRateHz = 100;
// The drain thread wakes every kWakeInterval and takes the GIL only when it has a reason: every
// kDrainInterval, when some ring is a quarter full, or when the interpreter's thread list
// changed. Taking the GIL is not free for the program: while the drain waits for it, each GIL
// release of the running thread (an asyncio loop's every poll) wakes the drain on the other CPU,
// and at a 50 ms drain an asyncio workload ran 4-8 % slower at 1 kHz for that alone.
constexpr auto kWakeInterval = std::chrono::milliseconds(50);
constexpr auto kDrainInterval = std::chrono::milliseconds(250);
constexpr auto kFlushInterval = std::chrono::milliseconds(500);  // the file is at most ~0.5 s behind
constexpr uint32_t kEarlyDrainWords = SampleRing::kWords / 4;

// ---- state (under the GIL unless noted) ------------------------------------------------------

bool g_enabled = false;
uint64_t g_period_ns = 1000000000u / kDefaultRateHz;
SourceChoice g_source_choice = SourceChoice::Auto;
format::SampleSource g_source = format::SampleSource::PerfTaskClock;
bool g_fallback_reported = false;
std::string g_user_path;
// Beside the instrumented mode's trace file (InstrumentedTracer(samples=True)): the samples go
// to a companion file of it, and the function registry is the instrumented mode's, configured
// and reset by it.
std::string g_companion_of;
TraceWriter* g_writer = nullptr;
std::vector<SampledThread*> g_threads;
Counters g_counters;
uint64_t g_threads_seen = 0;


// ---- threads -----------------------------------------------------------------------------------

void report_fallback_once(int error) {
    if (g_fallback_reported) {
        return;
    }
    g_fallback_reported = true;
    std::fprintf(stderr,
                 "etwtrace: perf events are not permitted here (%s; see /proc/sys/kernel/perf_event_paranoid): "
                 "sampling on per-thread CPU-clock timers instead, without kernel frames\n",
                 std::strerror(error));
}

void register_thread(PyThreadState* tstate, pid_t tid) {
    auto* t = new SampledThread();
    t->tid = tid;
    t->tstate = tstate;
    t->buffer.attach(g_writer, static_cast<uint64_t>(tid));
    t->buffer.thread(true);
    if (!insert_slot(tid, t)) {
        t->buffer.detach();
        delete t;
        return;  // more live threads than the table holds: this one goes unsampled
    }
    bool perf_denied = false;
    errno = 0;
    int error = t->clock.arm(tid, g_signal, g_period_ns, g_clock, g_source_choice, perf_denied);
    if (perf_denied) {
        report_fallback_once(errno ? errno : EACCES);
    }
    if (error) {
        Slot* slot = find_slot(tid);
        if (slot) {
            slot->thread.store(nullptr, std::memory_order_seq_cst);
        }
        t->buffer.detach();
        delete t;
        return;
    }
    g_source = t->clock.source;
    ++g_threads_seen;
    g_threads.push_back(t);
}

// No more samples of `t`: its clock stops and its handler, if running, has finished.
void stop_sampling(SampledThread* t) {
    Slot* slot = find_slot(t->tid);
    if (slot && slot->thread.load(std::memory_order_relaxed) == t) {
        slot->thread.store(nullptr, std::memory_order_seq_cst);
    }
    t->clock.disarm();
    while (t->in_handler.load(std::memory_order_seq_cst)) {
        std::this_thread::yield();  // a handler on that thread is finishing its sample
    }
}

void retire(SampledThread* t) {
    stop_sampling(t);
    drain_ring(*t, 0, g_counters);
    t->buffer.thread(false);
    t->buffer.detach();
    delete t;
}

PyThreadState* g_drain_tstate = nullptr;

// Under the GIL: sample every thread in the interpreter's list, and only those. False when a
// thread in the list has not started running yet: it is looked for again soon.
bool scan_threads() {
    bool all_started = true;
    PyThreadState* self = PyThreadState_Get();
    std::vector<std::pair<PyThreadState*, pid_t>> listed;
    for (PyThreadState* ts = PyInterpreterState_ThreadHead(self->interp); ts; ts = PyThreadState_Next(ts)) {
        if (ts == g_drain_tstate) {
            continue;
        }
        pid_t tid = static_cast<pid_t>(compat::thread_native_id(ts));
        if (tid <= 0) {
            all_started = false;  // no kernel id yet (3.11+)
            continue;
        }
        listed.emplace_back(ts, tid);
    }
    std::vector<bool> seen(g_threads.size(), false);
    for (const auto& [ts, tid] : listed) {
        bool known = false;
        for (size_t i = 0; i < g_threads.size(); ++i) {
            if (g_threads[i]->tstate == ts && g_threads[i]->tid == tid) {
                seen[i] = known = true;
                break;
            }
        }
        if (known) {
            continue;
        }
        // 3.9/3.10 give a thread state made for a new thread its creator's thread id until the
        // thread runs: a kernel id another listed state also has is not this state's yet.
        const auto same_tid = std::count_if(listed.begin(), listed.end(), [tid = tid](const auto& other) {
            return other.second == tid;
        });
        if (same_tid > 1) {
            all_started = false;
            continue;
        }
        register_thread(ts, tid);
        seen.push_back(true);
    }
    size_t kept = 0;
    for (size_t i = 0; i < g_threads.size(); ++i) {
        if (seen[i]) {
            g_threads[kept++] = g_threads[i];
        } else {
            retire(g_threads[i]);
        }
    }
    g_threads.resize(kept);
    return all_started;
}

void drain_all(bool flush, KernelNames kernel_names) {
    reset_slot_words();
    bool complete = true;
    for (SampledThread* t : g_threads) {
        complete = drain_ring(*t, 0, g_counters, kernel_names) && complete;
        if (flush) {
            t->buffer.flush();
        }
    }
    if (complete) {
        resolver_clear_deaths();  // no sample taken before them is left to resolve
    }
}

// A code object is about to be freed: resolve every thread's samples while it is alive.
void drain_before_death() {
    if (g_enabled) {
        for (SampledThread* t : g_threads) {
            drain_ring(*t, 0, g_counters);
        }
    }
}

SampledThread* find_thread(pid_t tid) {
    for (SampledThread* t : g_threads) {
        if (t->tid == tid) {
            return t;
        }
    }
    return nullptr;
}

SampledThread* current_thread() {
    pid_t tid = static_cast<pid_t>(platform::thread_id());
    for (SampledThread* t : g_threads) {
        if (t->tid == tid) {
            return t;
        }
    }
    scan_threads();
    for (SampledThread* t : g_threads) {
        if (t->tid == tid) {
            return t;
        }
    }
    return nullptr;
}

// ---- the drain thread ----------------------------------------------------------------------------

std::mutex* g_drain_mu = new std::mutex();
std::condition_variable* g_drain_cv = new std::condition_variable();
std::thread* g_drain = nullptr;
bool g_drain_stop = false;

// A round of draining run by the main thread itself, at its next eval-breaker check, through a
// pending call. The drain thread asks for one before it waits for the GIL: a main thread that
// releases the GIL often (an asyncio loop polls at every turn) takes it back before a waiter
// wakes on the other CPU, and CPython asks a holder to drop the GIL only after a switch
// interval with no switch, so the drain waited 110-130 ms per round there, each release
// meanwhile a futex wake: an asyncio workload ran 7-14 % slower at 1 kHz for that alone.
// At most one is queued at a time (the queue is shared with the program's extensions).
// Under g_drain_mu:
uint64_t g_rounds_asked = 0;  // rounds the drain thread queued
uint64_t g_rounds_done = 0;   // the last of them the main thread ran
constexpr auto kRoundWait = std::chrono::milliseconds(20);  // then the drain takes the GIL itself
constexpr uintptr_t kRoundFlushes = 1;                      // in a round's argument: flush the file too

int drain_round_pending(void* arg) {
    const auto value = reinterpret_cast<uintptr_t>(arg);
    if (g_enabled) {
        SamplerSignalBlocked unsampled;  // the round's own time is not the program's
        scan_threads();
        drain_all((value & kRoundFlushes) != 0, KernelNames::WaitInRing);
    }
    {
        std::lock_guard<std::mutex> lock(*g_drain_mu);
        g_rounds_done = value >> 1;
    }
    g_drain_cv->notify_all();
    return 0;
}

// Queues a round for the main thread and waits up to kRoundWait for it (the drain thread,
// without the GIL). False when it did not run in time (the main thread is blocked or has not
// reached a check; the round stays queued and runs later, harmlessly) or is still queued from
// before.
bool drain_round_in_main_thread(bool flush) {
    std::unique_lock<std::mutex> lock(*g_drain_mu);
    if (g_rounds_done != g_rounds_asked) {
        return false;
    }
    const uint64_t round = ++g_rounds_asked;
    if (Py_AddPendingCall(drain_round_pending, reinterpret_cast<void*>(round << 1 | (flush ? kRoundFlushes : 0))) != 0) {
        --g_rounds_asked;
        return false;
    }
    return g_drain_cv->wait_for(lock, kRoundWait, [round] { return g_rounds_done == round || g_drain_stop; }) &&
           g_rounds_done == round;
}

void drain_loop() {
    using Clock = std::chrono::steady_clock;
    PyGILState_STATE gil = PyGILState_Ensure();
    g_drain_tstate = PyThreadState_Get();
    PyInterpreterState* interp = g_drain_tstate->interp;
    const bool in_main_interpreter = interp == PyInterpreterState_Main();  // pending calls go there
    // Threads already running that enable() did not register (not started by threading) are
    // sampled from now, not from the first round.
    PyThreadState* known_head = g_enabled && scan_threads() ? PyInterpreterState_ThreadHead(interp) : nullptr;
    PyThreadState* own = PyEval_SaveThread();
    // The kernel's symbols are loaded (~50-80 ms of CPU) on a thread of their own the first time
    // a sample has kernel frames, most often at a system call: a program that never enters the
    // kernel between samples does not pay for them.
    std::thread symbols_loader;
    Clock::time_point last_drain = Clock::now();
    Clock::time_point last_flush = last_drain;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(*g_drain_mu);
            g_drain_cv->wait_for(lock, kWakeInterval, [] { return g_drain_stop; });
            if (g_drain_stop) {
                break;
            }
        }
        const Clock::time_point now = Clock::now();
        // The head is only compared, never followed, without the GIL: a thread state is added
        // at the head of the list, so a new thread changes it.
        const bool threads_changed = PyInterpreterState_ThreadHead(interp) != known_head;
        const bool drain_due = now - last_drain >= kDrainInterval || fullest_slot_words() >= kEarlyDrainWords;
        if (!drain_due && !threads_changed) {
            continue;
        }
        const bool flush = now - last_flush >= kFlushInterval;
        if (!threads_changed && in_main_interpreter && drain_round_in_main_thread(flush)) {
            last_drain = now;
            if (flush) {
                last_flush = now;
            }
            continue;
        }
        PyEval_RestoreThread(own);
        if (g_enabled) {
            const bool all_started = scan_threads();
            known_head = all_started ? PyInterpreterState_ThreadHead(interp) : nullptr;
            if (drain_due) {
                drain_all(flush, KernelNames::WaitInRing);
                if (flush) {
                    last_flush = now;
                }
            }
        }
        own = PyEval_SaveThread();
        if (!symbols_loader.joinable() && kernel_symbols_requested()) {
            symbols_loader = platform::start_thread_without_signals("etwtrace-ksyms", etwtrace::sampler::load_kernel_symbols);
        }
        if (drain_due) {
            last_drain = now;
        }
    }
    if (symbols_loader.joinable()) {
        symbols_loader.join();
    }
    PyEval_RestoreThread(own);
    g_drain_tstate = nullptr;
    PyGILState_Release(gil);
}

void start_drain() {
    if (g_drain || !g_enabled) {
        return;
    }
    g_drain_stop = false;
    g_drain = new std::thread(platform::start_thread_without_signals("etwtrace-sampler", drain_loop));
}

// Under the GIL, which the drain thread needs to finish its round: released while joining.
void stop_drain() {
    if (!g_drain) {
        return;
    }
    {
        std::lock_guard<std::mutex> lock(*g_drain_mu);
        g_drain_stop = true;
    }
    g_drain_cv->notify_all();
    std::thread* drain = g_drain;
    g_drain = nullptr;
    Py_BEGIN_ALLOW_THREADS
    drain->join();
    Py_END_ALLOW_THREADS
    delete drain;
}

int start_drain_pending(void*) {
    start_drain();
    return 0;
}

// ---- the trace file --------------------------------------------------------------------------------

std::string env_trace_dir() {
    const char* dir = std::getenv("ETWTRACE_TRACE_DIR");
    return dir && *dir ? std::string(dir) : std::string(".");
}

void write_stats() {
    std::vector<uint8_t> payload(8 * format::kMaxVarint64);
    uint8_t* p = payload.data();
    p = format::put_varint(p, g_counters.samples);
    p = format::put_varint(p, g_counters.dropped);
    p = format::put_varint(p, g_counters.unresolved_frames);
    p = format::put_varint(p, g_counters.truncated);
    p = format::put_varint(p, g_period_ns);
    *p++ = static_cast<uint8_t>(g_source);
    p = format::put_varint(p, g_threads_seen);
    p = format::put_varint(p, g_counters.unmerged);
    payload.resize(static_cast<size_t>(p - payload.data()));
    g_writer->set_trailer(format::RecordType::SamplerStats, std::move(payload));
}

void finish() {
    if (!g_enabled) {
        return;
    }
    stop_drain();
    g_enabled = false;
    // The last drains: any kernel frames left are named now (the program is done), with the
    // sampling stopped first: loading the names here takes 50-80 ms of this thread's CPU,
    // which is ours, not the program's (it was 19 % of a 0.2 s program's samples).
    for (SampledThread* t : g_threads) {
        stop_sampling(t);
    }
    if (std::any_of(g_threads.begin(), g_threads.end(), [](SampledThread* t) { return kernel_names_needed(*t); })) {
        etwtrace::sampler::load_kernel_symbols();
    }
    for (SampledThread* t : g_threads) {
        retire(t);
    }
    g_threads.clear();
    g_active.store(false);
    remove_thread_start_hook();
    resolver_stop();
    if (g_companion_of.empty()) {
        registry().reset();
    }
    if (g_writer) {
        write_stats();
        g_writer->finish();
        delete g_writer;
        g_writer = nullptr;
    }
}

bool open_writer(uint32_t parent_pid, bool child, std::string& error) {
    TraceWriter::Options options{Py_GetVersion(), parent_pid};
    std::unique_ptr<TraceWriter> writer;
    if (!g_companion_of.empty() && !child) {
        writer = TraceWriter::open_companion(g_companion_of, ".samples", options, error);
        if (writer) {
            g_user_path = writer->path();  // a fork() child's samples go beside it
        }
    } else if (g_user_path.empty()) {
        writer = TraceWriter::open_in_directory(env_trace_dir(), options, error);
    } else if (child) {
        writer = TraceWriter::open_beside(g_user_path, options, error);
    } else {
        writer = TraceWriter::open(g_user_path, /*exclusive=*/false, options, error);
    }
    g_writer = writer.release();
    return g_writer != nullptr;
}

// ---- process hooks ---------------------------------------------------------------------------------

PyObject* atexit_hook(PyObject*, PyObject*) {
    finish();
    Py_RETURN_NONE;
}
PyMethodDef atexit_def = {"_etwtrace_sampler_atexit", atexit_hook, METH_NOARGS, nullptr};

// Before fork() the drain thread stops (after resolving what is buffered) and the writer thread
// pauses, so the process forks with no thread of ours (3.12+ warn about forking a
// multi-threaded process). The drain thread comes back through a pending call, after os.fork()
// has counted threads (3.13.0 counts them after the after-fork-in-parent hooks).
PyObject* before_fork(PyObject*, PyObject*) {
    if (g_enabled) {
        stop_drain();
        drain_all(true, KernelNames::NameLater);
        g_writer->pause();
    }
    Py_RETURN_NONE;
}
PyMethodDef before_fork_def = {"_etwtrace_sampler_before_fork", before_fork, METH_NOARGS, nullptr};

PyObject* after_fork_parent(PyObject*, PyObject*) {
    if (g_enabled) {
        g_writer->resume();
        Py_AddPendingCall(start_drain_pending, nullptr);
    }
    Py_RETURN_NONE;
}
PyMethodDef after_fork_parent_def = {"_etwtrace_sampler_after_fork_parent", after_fork_parent, METH_NOARGS, nullptr};

// fork() child: the parent's threads, file and writer thread are the parent's. The child
// samples its one thread into a file of its own.
PyObject* after_fork_child(PyObject*, PyObject*) {
    t_tid = 0;  // this thread has a new id
    if (!g_enabled) {
        Py_RETURN_NONE;
    }
    g_drain = nullptr;  // the parent's (never joined here: it does not exist)
    g_drain_mu = new std::mutex();
    g_drain_cv = new std::condition_variable();
    g_drain_tstate = nullptr;
    g_active.store(false);
    clear_slots();
    for (SampledThread* t : g_threads) {
        t->clock.forget_after_fork();
        t->buffer.discard_after_fork();  // leaked with the record: the memory is the parent's
    }
    g_threads.clear();
    g_writer->abandon_after_fork();
    g_writer = nullptr;
    g_counters = Counters();
    g_threads_seen = 0;
    std::string error;
    if (!open_writer(static_cast<uint32_t>(getppid()), true, error)) {
        g_enabled = false;
        resolver_stop();
        PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "etwtrace: cannot write the child's trace file: %s", error.c_str());
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    resolver_reset();
    g_active.store(true);
    g_rounds_done = g_rounds_asked;  // a round the parent queued may not survive fork(): not awaited
    scan_threads();
    start_drain();
    Py_RETURN_NONE;
}
PyMethodDef after_fork_child_def = {"_etwtrace_sampler_after_fork_child", after_fork_child, METH_NOARGS, nullptr};

ProcessHooks g_process_hooks = {&atexit_def, &before_fork_def, &after_fork_parent_def, &after_fork_child_def, false};

// ---- options -----------------------------------------------------------------------------------------

bool option_int(PyObject* options, const char* key, long& out) {
    PyObject* value = PyDict_GetItemString(options, key);
    if (!value || value == Py_None) {
        return true;
    }
    out = PyLong_AsLong(value);
    return !(out == -1 && PyErr_Occurred());
}

bool read_options(PyObject* options) {
    long rate = static_cast<long>(kDefaultRateHz), signal = 0, native = 1;
    std::string clock, source, path, companion_of;
    if (!option_int(options, "rate", rate) || !option_int(options, "signal", signal) ||
        !option_int(options, "native", native) ||
        !enable_option_string(options, "clock", clock) || !enable_option_string(options, "source", source) ||
        !enable_option_string(options, "trace_path", path) ||
        !enable_option_string(options, "companion_of", companion_of)) {
        return false;
    }
    if (rate < 1 || rate > 100000) {
        PyErr_Format(PyExc_ValueError, "the sampling rate must be 1 - 100000 per second, not %ld", rate);
        return false;
    }
    if (!clock.empty() && clock != "cpu" && clock != "wall") {
        PyErr_Format(PyExc_ValueError, "the sampler's clock is 'cpu' or 'wall', not '%s'", clock.c_str());
        return false;
    }
    if (!source.empty() && source != "auto" && source != "perf" && source != "timer") {
        PyErr_Format(PyExc_ValueError, "the sampler's source is 'auto', 'perf' or 'timer', not '%s'", source.c_str());
        return false;
    }
    if (signal && (signal < SIGRTMIN || signal > SIGRTMAX)) {
        PyErr_Format(PyExc_ValueError, "the sampler's signal must be a real-time signal (%d - %d), not %ld", SIGRTMIN,
                     SIGRTMAX, signal);
        return false;
    }
    g_period_ns = 1000000000u / static_cast<uint64_t>(rate);
    g_half_period_ticks = static_cast<uint64_t>(static_cast<double>(g_period_ns) / 2e9 *
                                                static_cast<double>(trace::ticks_per_second()));
    g_clock = clock == "wall" ? ClockChoice::Wall : ClockChoice::Cpu;
    g_source_choice = source == "perf" ? SourceChoice::Perf : source == "timer" ? SourceChoice::Timer : SourceChoice::Auto;
    g_user_path = path;
    g_companion_of = companion_of;
    g_native = native != 0 && etwtrace::sampler::native_unwind_available();
    if (g_native && !etwtrace::sampler::native_unwind_prepare()) {
        g_native = false;
        static bool said = false;
        if (!said) {
            said = true;
            std::fprintf(stderr, "etwtrace: samples have Python frames only: the dynamic loader's lock was not "
                                 "found, and unwinding native stacks without knowing it is held could hang the "
                                 "program\n");
        }
    }
    return install_signal(static_cast<int>(signal));
}

// ---- the mode --------------------------------------------------------------------------------------------

class SamplerMode final : public TracerMode {
public:
    const char* name() const override { return "sampler"; }

    bool enable(PyObject* ignored, PyObject* include, PyObject* options) override {
        if (g_enabled) {
            PyErr_SetString(PyExc_RuntimeError, "etwtrace: the sampler is already enabled");
            return false;
        }
        if (!read_options(options) || !install_process_hooks(g_process_hooks) || !install_code_death_hook()) {
            return false;
        }
        set_drain_before_death(drain_before_death);
        std::string error;
        if (!open_writer(0, false, error)) {
            PyErr_Format(PyExc_OSError, "etwtrace: cannot create the trace file: %s", error.c_str());
            return false;
        }
        if (g_companion_of.empty() && !registry().configure(ignored, include, options, [](FunctionRecord&) {})) {
            compat::SavedException saved;
            g_writer->finish();
            delete g_writer;
            g_writer = nullptr;
            return false;
        }
        g_counters = Counters();
        g_threads_seen = 0;
        resolver_reset();
        g_enabled = true;
        g_active.store(true);
        scan_threads();
        if (!install_thread_start_hook()) {
            finish();
            return false;
        }
        if (g_source_choice == SourceChoice::Perf && g_threads.empty()) {
            finish();
            PyErr_SetString(PyExc_OSError, "etwtrace: perf events are not permitted here (source='perf')");
            return false;
        }
        start_drain();
        return true;
    }

    bool disable() override {
        finish();
        return true;
    }

    bool write_mark(std::string_view text, MarkKind kind) override {
        if (!g_enabled) {
            return true;
        }
        SampledThread* t = current_thread();
        if (!t) {
            return true;
        }
        if (kind == MarkKind::StackSample) {
            // A sample of this very instant: the signal is delivered before tgkill returns.
            t_requested = true;
            syscall(SYS_tgkill, getpid(), t->tid, g_signal);
            t_requested = false;
        }
        drain_ring(*t, 0, g_counters);  // the thread's samples so far come before the mark
        t->buffer.mark(kind, text);
        return true;
    }

    PyObject* technical_info() override {
        static const char* sources[] = {"perf-task-clock", "timer-thread-cpu-clock", "timer-wall-clock"};
        std::string path = g_writer ? g_writer->path() : std::string();
        return Py_BuildValue("(sKis)", sources[static_cast<int>(g_source)],
                             static_cast<unsigned long long>(1000000000u / g_period_ns), g_signal, path.c_str());
    }
};

}  // namespace

void register_current_thread() {
    if (!g_enabled) {
        return;
    }
    PyThreadState* tstate = PyThreadState_Get();
    pid_t tid = static_cast<pid_t>(platform::thread_id());
    SampledThread* known = find_thread(tid);
    if (known && known->tstate == tstate) {
        return;  // the rescan was first
    }
    if (known) {
        retire(known);  // a thread id reused before the rescan noticed: the old thread ended
        g_threads.erase(std::find(g_threads.begin(), g_threads.end(), known));
    }
    register_thread(tstate, tid);
}

std::string trace_path() { return g_writer ? g_writer->path() : std::string(); }

}  // namespace etwtrace::py::sampling

namespace etwtrace::py {

TracerMode& sampler_mode() {
    static sampling::SamplerMode mode;
    return mode;
}

std::string sampler_trace_path() { return sampling::trace_path(); }

}  // namespace etwtrace::py
