// instrument_mode.cpp - instrumented mode: every Python and C call and return, recorded as
// PythonFunctionPush/Pop events in the trace file (trace/) and fired as USDT probes.
//
// Hooks, chosen per version as the cheapest mechanism that sees every Python frame entry and
// exit (generator resumes and suspensions, exception unwinding) *and* every C call (measured
// floors in docs/instrumented.md):
//   3.9 - 3.11  C profile function (PyEval_SetProfile) on every thread: running threads are
//               hooked through the interpreter's thread list, new ones via threading.setprofile.
//   3.12+       sys.monitoring (PEP 669) with C-implemented callbacks for PY_START/RESUME/THROW,
//               PY_RETURN/YIELD/UNWIND, CALL and C_RETURN/C_RAISE: 2.8x against 4.5x for the
//               profile function, and global to all threads.
// A bare PEP 523 eval hook is cheaper still but never sees C calls, so it cannot be exact alone.
//
// Each thread keeps a shadow stack of what it pushed. A return pops only when it matches the
// top (frames that started before enable() or are filtered out are never pushed), so the
// stack rebuilt from the events is right at every instant, and the shadow stack gives the
// Caller of each push and lets a fork() child start its own file with the stack it inherited.
//
// Files: instrument_state.h (shared state, push/pop), instrument_functions.cpp (definitions,
// C function lookup), instrument_profile.cpp (3.9 - 3.11), instrument_monitoring.cpp (3.12+),
// instrument_own_profiler.cpp (the program's own sys.setprofile);
// this one: threads, enable/disable, atexit/fork, and the InstrumentMode class.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "platform/linux.h"
#include "python/instrument_api.h"
#include "python/instrument_state.h"
#include "python/process_hooks.h"
#include "python/tracer_mode.h"

namespace etwtrace::py {
namespace instrument {

// ---- global state (all of it used under the GIL, except where threads_mu says) -------------

uint32_t g_epoch = 1;
bool g_enabled = false;
bool g_use_monitoring = false;
PublishedDefinitions g_published;
CacheSlot g_cache[kCacheSize];
const void* g_fork_return_key = nullptr;
__attribute__((tls_model("initial-exec"))) constinit thread_local ThreadSlot t_slot;  // see instrument_state.h

namespace {

TraceWriter* g_writer = nullptr;
std::string g_user_path;         // trace_path option, or empty
bool g_with_samples = false;     // the sampler runs alongside, into a companion file
std::mutex* g_threads_mu = new std::mutex();  // guards g_threads against exiting threads
std::vector<ThreadState*> g_threads;
std::unordered_map<PyThreadState*, std::vector<Entry>>* g_replay =
    new std::unordered_map<PyThreadState*, std::vector<Entry>>();
// fork() in the parent (before_fork): the forking thread, its stack depth and the C function
// on top, whose return resumes the writer.
ThreadState* g_forking_thread = nullptr;
size_t g_forking_depth = 0;
const void* g_forking_key = nullptr;

// Runs at thread exit (after the thread's Python state is gone, without the GIL).
struct ThreadExitGuard {
    bool armed = false;
    ~ThreadExitGuard() {
        if (!armed) {
            return;
        }
        std::lock_guard<std::mutex> lock(*g_threads_mu);
        if (t_slot.epoch != g_epoch || !t_slot.state) {
            return;
        }
        ThreadState* ts = t_slot.state;
        t_slot.state = nullptr;
        close_open_frames(ts);
        ts->buffer.thread(false);
        probes::thread(ts->tid, 0);
        ts->buffer.detach();
        for (auto& slot : g_threads) {
            if (slot == ts) {
                slot = g_threads.back();
                g_threads.pop_back();
                break;
            }
        }
        delete ts;
    }
};
thread_local ThreadExitGuard t_exit_guard;

// ---- threads ---------------------------------------------------------------------------------

// The frames a thread is running, outermost first, as entries to push (included ones only).
std::vector<Entry> running_frames(PyThreadState* tstate) {
    std::vector<PyFrameObject*> frames;
    PyFrameObject* frame = compat::thread_frame(tstate);
    while (frame && frames.size() < 10000) {
        frames.push_back(frame);
        frame = PyFrame_GetBack(frame);
    }
    Py_XDECREF(frame);
    std::vector<Entry> entries;
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
        PyCodeObject* code = compat::frame_object_code(*it);
        FunctionRecord* record = registry().lookup(code);
        ThreadState* ts = current();
        if (ts && !ts->pending.empty()) {
            flush_pending(ts, code, record);  // definitions (with line tables) before pushes
        }
        if (record) {
            // The profile hook keys frames by their frame object, sys.monitoring by code.
            const void* key = g_use_monitoring ? static_cast<const void*>(code) : static_cast<const void*>(*it);
            int lasti = compat::frame_object_lasti_bytes(*it);
            entries.push_back(Entry{key, g_use_monitoring ? nullptr : *it, record->id,
                                    lasti > 0 ? static_cast<uint32_t>(lasti) : 0, false});
        }
    }
    for (PyFrameObject* f : frames) {
        Py_DECREF(f);  // the profile hook's frames stay alive: they are running
    }
    return entries;
}

void replay(ThreadState* ts, const std::vector<Entry>& entries) {
    for (const Entry& e : entries) {
        uint32_t caller = ts->stack.empty() ? 0 : ts->stack.back().id;
        uint32_t offset = ts->stack.empty() ? 0 : ts->stack.back().call_offset;
        ts->buffer.push(e.id, caller, offset);
        ts->stack.push_back(e);
    }
}

// What enable() captured for another thread may be stale by the time that thread first runs a
// hook: the thread can have ended and its PyThreadState address been reused by a new thread
// (whose first CALL would then replay, and read the lasti of, dead frame objects), or it
// returned from some of those frames before its hook was set. Only the leading entries that are
// still the thread's running frames, outermost first, are replayed; their frames are alive.
// `entering`: the innermost running frame is being started or resumed by the calling hook,
// which pushes it; replaying it too would leave it on the stack twice.
std::vector<Entry> live_prefix(const std::vector<Entry>& captured, bool entering) {
    PyThreadState* tstate = PyThreadState_Get();
    std::vector<Entry> live = running_frames(tstate);
    if (entering && !live.empty()) {
        PyFrameObject* innermost = compat::thread_frame(tstate);  // not null: live has entries
        if (innermost) {
            const void* key = g_use_monitoring ? static_cast<const void*>(compat::frame_object_code(innermost))
                                               : static_cast<const void*>(innermost);
            if (live.back().key == key) {
                live.pop_back();
            }
            Py_DECREF(innermost);
        }
    }
    size_t n = 0;
    while (n < captured.size() && n < live.size() && captured[n].key == live[n].key && captured[n].id == live[n].id) {
        ++n;
    }
    live.resize(n);
    return live;
}

}  // namespace

void fork_call_returned(ThreadState* ts) {
    if (ts == g_forking_thread && ts->stack.size() + 1 == g_forking_depth) {
        g_fork_return_key = nullptr;
        g_forking_thread = nullptr;
        if (g_writer) {
            g_writer->resume();
        }
    }
}

void add_lost_events(uint64_t n) {
    if (g_writer) {
        g_writer->add_lost_events(n);
    }
}

ThreadState* attach_thread(bool entering) {
    if (!g_enabled || !g_writer) {
        return nullptr;
    }
    auto* ts = new ThreadState();
    ts->tid = platform::thread_id();
    ts->buffer.attach(g_writer, ts->tid);
    {
        std::lock_guard<std::mutex> lock(*g_threads_mu);
        g_threads.push_back(ts);
    }
    t_slot.state = ts;
    t_slot.epoch = g_epoch;
    t_exit_guard.armed = true;
    ts->buffer.thread(true);
    probes::thread(ts->tid, 1);
    auto it = g_replay->find(PyThreadState_Get());
    if (it != g_replay->end()) {
        std::vector<Entry> entries = std::move(it->second);
        g_replay->erase(it);
        replay(ts, live_prefix(entries, entering));
    }
    return ts;
}

namespace {

// ---- enable / disable / process hooks --------------------------------------------------------

std::string env_trace_dir() {
    const char* dir = std::getenv("ETWTRACE_TRACE_DIR");
    return dir && *dir ? std::string(dir) : std::string(".");
}

std::string python_version() { return Py_GetVersion(); }

void detach_all_threads() {
    std::lock_guard<std::mutex> lock(*g_threads_mu);
    ++g_epoch;  // under the lock: an exiting thread's guard must not see its deleted state
    for (ThreadState* ts : g_threads) {
        close_open_frames(ts);
        ts->buffer.thread(false);
        probes::thread(ts->tid, 0);
        ts->buffer.detach();
        delete ts;
    }
    g_threads.clear();
    t_slot.state = nullptr;
}

void remove_hooks() {
    if (g_use_monitoring) {
        remove_monitoring_hooks();
    } else {
        remove_profile_hooks();
    }
}

}  // namespace

void finish_trace() {
    if (!g_enabled) {
        return;
    }
    if (g_with_samples) {
        g_with_samples = false;
        sampler_mode().disable();  // its last drains look functions up in the registry reset below
    }
    g_enabled = false;
    g_fork_return_key = nullptr;  // its thread state goes now (a paused writer finishes as well)
    g_forking_thread = nullptr;
    remove_hooks();
    detach_all_threads();
    g_replay->clear();
    registry().reset();
    if (g_writer) {
        g_writer->finish();
        delete g_writer;
        g_writer = nullptr;
    }
}

namespace {

PyObject* atexit_hook(PyObject*, PyObject*) {
    finish_trace();
    Py_RETURN_NONE;
}
PyMethodDef atexit_def = {"_etwtrace_atexit", atexit_hook, METH_NOARGS, nullptr};

// fork() child: the parent's file and writer thread are the parent's. Start a file of our own
// holding the definitions and the stack this thread inherited.
PyObject* after_fork_child(PyObject*, PyObject*) {
    if (!g_enabled || !g_writer) {
        Py_RETURN_NONE;
    }
    g_threads_mu = new (std::nothrow) std::mutex();  // the old one may be held by a vanished thread
    g_fork_return_key = nullptr;  // the child's writer is new and running
    g_forking_thread = nullptr;
    g_forking_key = nullptr;
    ThreadState* self = thread_state_current() ? t_slot.state : nullptr;
    std::vector<Entry> stack;
    if (self) {
        stack = self->stack;
        self->buffer.discard_after_fork();
    }
    g_threads.clear();  // other threads do not exist here; their memory is leaked on purpose
    g_replay->clear();
    g_writer->abandon_after_fork();
    g_writer = nullptr;  // leaked: its mutex and thread belong to the parent
    TraceWriter::Options options{python_version(), static_cast<uint32_t>(getppid())};
    std::string error;
    std::unique_ptr<TraceWriter> writer = g_user_path.empty()
                                              ? TraceWriter::open_in_directory(env_trace_dir(), options, error)
                                              : TraceWriter::open_beside(g_user_path, options, error);
    ++g_epoch;
    if (!writer) {
        g_enabled = false;
        remove_hooks();
        PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "etwtrace: cannot write the child's trace file: %s", error.c_str());
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    g_writer = writer.release();
    ThreadState* ts = attach_thread();
    if (ts) {
        for (const PublishedDefinitions::Entry& entry : g_published.entries) {
            auto first = g_published.runs.begin() + entry.first_run;
            write_definition(ts, entry.record, LineTable(first, first + entry.run_count));
        }
        replay(ts, stack);
    }
    Py_RETURN_NONE;
}
PyMethodDef after_fork_def = {"_etwtrace_after_fork_child", after_fork_child, METH_NOARGS, nullptr};

// Around fork() in the parent: the writer thread stops (after writing what is queued) before
// fork() and starts again only once the forking call has returned to its caller, so no thread
// of ours exists while CPython counts them (3.12+ warn "This process is multi-threaded, use of
// fork() may lead to deadlocks" otherwise; 3.12 counts right after fork(), 3.13.0 after the
// after-fork-in-parent hooks, and the program's hooks among those make events: a chunk
// submitted there used to bring the thread back in time to be counted, whenever fork() had
// taken longer than the 100 ms flush interval). The forking call is the C function on top of
// the forking thread's stack in before_fork; its return (pop_c) resumes the writer. Events
// meanwhile wait in the queue, so the trace stays lossless.
PyObject* before_fork(PyObject*, PyObject*) {
    g_forking_key = nullptr;
    if (g_enabled && g_writer) {
        g_writer->pause();  // the writer thread never needs the GIL
        ThreadState* ts = thread_state_current() ? t_slot.state : nullptr;
        if (ts && !ts->stack.empty() && ts->stack.back().is_c) {
            g_forking_thread = ts;
            g_forking_depth = ts->stack.size();
            g_forking_key = ts->stack.back().key;
        }
    }
    Py_RETURN_NONE;
}
PyMethodDef before_fork_def = {"_etwtrace_before_fork", before_fork, METH_NOARGS, nullptr};

PyObject* after_fork_parent(PyObject*, PyObject*) {
    if (g_writer && g_forking_key) {
        g_fork_return_key = g_forking_key;  // resumed by fork_call_returned
    } else if (g_writer) {
        g_writer->resume();  // forked from C: nothing of ours sees the call return
    }
    g_forking_key = nullptr;
    Py_RETURN_NONE;
}
PyMethodDef after_fork_parent_def = {"_etwtrace_after_fork_parent", after_fork_parent, METH_NOARGS, nullptr};

ProcessHooks g_process_hooks = {&atexit_def, &before_fork_def, &after_fork_parent_def, &after_fork_def, false};

bool install_hooks() {
    hook_profile_installers();  // before the profile hooks look up sys.setprofile's key
    return g_use_monitoring ? install_monitoring_hooks() : install_profile_hooks();
}

class InstrumentMode final : public TracerMode {
public:
    const char* name() const override { return "instrumented"; }

    bool enable(PyObject* ignored, PyObject* include, PyObject* options) override {
        if (g_enabled) {
            PyErr_SetString(PyExc_RuntimeError, "etwtrace: instrumented tracing is already enabled");
            return false;
        }
        std::string path;
        if (!enable_option_string(options, "trace_path", path) || !install_process_hooks(g_process_hooks)) {
            return false;
        }
        TraceWriter::Options writer_options{python_version(), 0};
        std::string error;
        std::unique_ptr<TraceWriter> writer =
            path.empty() ? TraceWriter::open_in_directory(env_trace_dir(), writer_options, error)
                         : TraceWriter::open(path, /*exclusive=*/false, writer_options, error);
        if (!writer) {
            PyErr_Format(PyExc_OSError, "etwtrace: cannot create the trace file: %s", error.c_str());
            return false;
        }
        registry().keep_retired_records();  // our stacks and pending lists point at records
        g_published = PublishedDefinitions();  // this file's definitions, for fork children
        if (!registry().configure(ignored, include, options, [](FunctionRecord& record) {
                ThreadState* ts = current();
                if (ts) {
                    ts->pending.push_back(&record);
                }
            })) {
            return false;
        }
        g_user_path = path;
        g_use_monitoring = compat::has_sys_monitoring();
        g_writer = writer.release();
        g_enabled = true;
        {
            std::lock_guard<std::mutex> lock(*g_threads_mu);  // exiting threads read it
            ++g_epoch;
        }
        // Frames running now get pushes, so their returns pop what was pushed. The current
        // thread replays at once; other threads when they next run (their own buffers).
        PyThreadState* self = PyThreadState_Get();
        g_replay->clear();
        ThreadState* ts = attach_thread();
        for (PyThreadState* t = PyInterpreterState_ThreadHead(self->interp); t; t = PyThreadState_Next(t)) {
            if (t != self) {
                std::vector<Entry> entries = running_frames(t);
                if (!entries.empty()) {
                    (*g_replay)[t] = std::move(entries);
                }
            }
        }
        if (ts) {
            replay(ts, running_frames(self));
        }
        if (!install_hooks()) {
            compat::SavedException saved;  // finish_trace() must not lose install_hooks()'s error
            finish_trace();
            return false;
        }
        if (!start_samples(ignored, include, options)) {
            compat::SavedException saved;
            finish_trace();
            return false;
        }
        return true;
    }

    // With the option "samples" (and "sample_rate", "sample_clock"), the sampler runs too, on
    // the same clock, into a companion file of this trace (run.etwtrace -> run.samples.etwtrace).
    bool start_samples(PyObject* ignored, PyObject* include, PyObject* options) {
        PyObject* samples = options ? PyDict_GetItemString(options, "samples") : nullptr;
        if (!samples || !PyObject_IsTrue(samples)) {
            return !PyErr_Occurred();
        }
        PyObject* sampler_options = PyDict_New();
        if (!sampler_options) {
            return false;
        }
        bool ok = true;
        for (const auto& [from, to] : {std::pair{"sample_rate", "rate"}, std::pair{"sample_clock", "clock"}}) {
            PyObject* value = PyDict_GetItemString(options, from);
            ok = ok && (!value || PyDict_SetItemString(sampler_options, to, value) == 0);
        }
        PyObject* path = PyUnicode_DecodeFSDefault(g_writer->path().c_str());
        ok = ok && path && PyDict_SetItemString(sampler_options, "companion_of", path) == 0;
        Py_XDECREF(path);
        ok = ok && sampler_mode().enable(ignored, include, sampler_options);
        Py_DECREF(sampler_options);
        g_with_samples = ok;
        return ok;
    }

    bool disable() override {
        finish_trace();
        return true;
    }

    bool write_mark(std::string_view text, MarkKind kind) override {
        ThreadState* ts = current();
        if (ts) {
            ts->buffer.mark(kind, text);
        }
        probes::fire_mark(text, kind);
        return true;
    }

    PyObject* technical_info() override {
        const char* hook = compat::has_sys_monitoring() ? "sys.monitoring" : "profile";
        return Py_BuildValue("(ss)", hook, instrument_trace_path().c_str());
    }
};

}  // namespace
}  // namespace instrument

TracerMode& instrument_mode() {
    static instrument::InstrumentMode mode;
    return mode;
}

std::string instrument_trace_path() { return instrument::g_writer ? instrument::g_writer->path() : std::string(); }

}  // namespace etwtrace::py
