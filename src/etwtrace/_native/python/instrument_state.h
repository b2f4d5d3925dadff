// instrument_state.h - the state the instrumented mode's files share (overview and the choice
// of hooks: instrument_mode.cpp), and the push/pop path every hook runs through.
//
//   instrument_mode.cpp        threads, enable/disable, atexit/fork, the InstrumentMode class
//   instrument_functions.cpp   PythonFunction definitions (line tables), C function lookup
//   instrument_profile.cpp     3.9 - 3.11: C profile function, new-thread hooks
//   instrument_monitoring.cpp  3.12+: sys.monitoring callbacks
//   instrument_own_profiler.cpp  the program's sys.setprofile: the events it sees untraced
//
// Everything here is used under the GIL (the thread list in instrument_mode.cpp has its own
// mutex). The hot-path helpers stay inline in this header so that they are inlined into each
// callback, as they were when all of this was one file.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "probes/probes.h"
#include "python/function_registry.h"
#include "trace/trace_writer.h"

// Hidden like everything in _etwtrace (CXX_VISIBILITY_PRESET), and said here too because
// -fvisibility does not cover extern declarations: without it every file but the one that
// defines g_epoch, g_cache etc. would reach them through the GOT, an extra load per access.
#pragma GCC visibility push(hidden)

namespace etwtrace::py::instrument {

using trace::ThreadBuffer;
using trace::TraceWriter;
using LineTable = std::vector<ThreadBuffer::LineRun>;

struct Entry {
    const void* key;       // profile: PyFrameObject*; sys.monitoring: PyCodeObject*; C: PyMethodDef*
    PyFrameObject* frame;  // profile hook only: the frame, to read the caller's instruction
    uint32_t id;
    uint32_t call_offset;  // sys.monitoring: last call site seen in this Python frame
    bool is_c;
};

struct ThreadState {
    ThreadBuffer buffer;
    std::vector<Entry> stack;
    std::vector<FunctionRecord*> pending;  // published by the registry, definition not yet written
    uint64_t tid = 0;
};

struct CacheSlot {
    const void* key = nullptr;  // PyMethodDef*
    FunctionRecord* record = nullptr;
    uint32_t epoch = 0;
    bool flush_first = false;  // os._exit: finish the trace before the process vanishes
};

// ---- shared globals (defined in instrument_mode.cpp; all used under the GIL) ----------------

extern uint32_t g_epoch;  // bumped by enable/disable/fork: thread-local state goes stale
extern bool g_enabled;
extern bool g_use_monitoring;  // sys.monitoring (3.12+) rather than the profile function
// Every definition written into the current trace file, replayed into fork children: flat,
// because it holds one entry per function seen (16 bytes plus its line runs, no allocation
// each), and in deques, which grow by fixed blocks where a vector's doubling would leave up to
// half of its capacity touched but unused (memory per live function is bounded).
struct PublishedDefinitions {
    struct Entry {
        FunctionRecord* record;
        uint32_t first_run;
        uint32_t run_count;
    };
    std::deque<Entry> entries;
    std::deque<ThreadBuffer::LineRun> runs;
    void add(FunctionRecord* record, const LineTable& lines) {
        entries.push_back({record, static_cast<uint32_t>(runs.size()), static_cast<uint32_t>(lines.size())});
        runs.insert(runs.end(), lines.begin(), lines.end());
    }
};
extern PublishedDefinitions g_published;
constexpr size_t kCacheSize = 4096;
extern CacheSlot g_cache[kCacheSize];  // C functions by PyMethodDef*

// initial-exec: one TLS access is a single %fs-relative load instead of a __tls_get_addr
// call (5% of a traced fib() otherwise). glibc keeps static TLS room for dlopen()ed modules
// that need a few bytes like this. constinit: other files read it directly, not through
// the C++ thread_local wrapper function an extern thread_local otherwise gets.
struct ThreadSlot {
    ThreadState* state = nullptr;
    uint32_t epoch = 0;
};
__attribute__((tls_model("initial-exec"))) extern constinit thread_local ThreadSlot t_slot;

// ---- defined in the other files ---------------------------------------------------------------

// instrument_mode.cpp
// The calling thread's state, created now (nullptr: not tracing). `entering`: called from the
// event that starts or resumes the thread's current frame, which the caller pushes itself.
ThreadState* attach_thread(bool entering = false);
void finish_trace();           // disable + close: used before os._exit
void add_lost_events(uint64_t n);  // events the trace will miss (our hook was displaced)
// fork() in the parent: the C function whose return ends the fork (os.fork, on the forking
// thread's stack), set from the after-fork-in-parent hook until that return; nullptr otherwise.
extern const void* g_fork_return_key;
__attribute__((noinline)) void fork_call_returned(ThreadState* ts);

// instrument_functions.cpp
void write_definition(ThreadState* ts, FunctionRecord* record, const LineTable& lines);
// Writes the PythonFunction events the registry asked for while looking `code` up.
__attribute__((noinline)) void flush_pending(ThreadState* ts, PyCodeObject* code, FunctionRecord* looked_up);
__attribute__((noinline)) CacheSlot* cfunction_lookup_slow(PyObject* callable, PyObject* self_arg, const void* key,
                                                           CacheSlot& slot);

// instrument_profile.cpp: the profile function on every thread (3.9 - 3.11)
bool install_profile_hooks();
void remove_profile_hooks();

// instrument_monitoring.cpp: sys.monitoring callbacks (3.12+)
bool install_monitoring_hooks();
void remove_monitoring_hooks();

// instrument_own_profiler.cpp: the builtin that installs a profile function on the calling
// thread (sys.setprofile), by its method definition.
extern const void* g_installer_keys[1];
void hook_profile_installers();  // once per process, before the keys are compared
// Our hook saw the call of installer `key` start where, untraced, nothing profiles it: the
// profile function it installs must not see the call's return.
void note_unprofiled_installer_call(const void* key);
inline bool is_profile_installer(const void* key) {
    return key && key == g_installer_keys[0];
}

// instrument_monitoring.cpp: untraced, would a C call at this site of `code` send C_RETURN
// (some other sys.monitoring tool, or a thread's profile function, watches calls)?
bool others_watch_calls(PyCodeObject* code);

// ---- hot path ---------------------------------------------------------------------------------

// t_slot.state is this thread's for the current tracing session (nullptr: not traced).
inline bool thread_state_current() {
    return __builtin_expect(t_slot.epoch == g_epoch, 1);
}

inline ThreadState* current(bool entering = false) {
    if (thread_state_current()) {
        return t_slot.state;
    }
    return attach_thread(entering);
}

inline int32_t caller_line_slow(const Entry& top) {
    if (top.is_c) {
        return 0;
    }
    if (top.frame) {
        return PyFrame_GetLineNumber(top.frame);
    }
    return PyCode_Addr2Line(static_cast<PyCodeObject*>(const_cast<void*>(top.key)), static_cast<int>(top.call_offset));
}

// Inlined into every hook: a call here cost more than a tenth of the hook's own work.
__attribute__((always_inline)) inline void push(ThreadState* ts, FunctionRecord* record, const void* key,
                                                PyFrameObject* frame, bool is_c, uint32_t caller,
                                                uint32_t caller_offset) {
    ts->buffer.push(record->id, caller, caller_offset);
    if (probes::function_push_enabled()) {
        probes::function_push(record->id, caller, ts->stack.empty() ? 0 : caller_line_slow(ts->stack.back()));
    }
    ts->stack.push_back(Entry{key, frame, record->id, 0, is_c});
}

__attribute__((always_inline)) inline void pop(ThreadState* ts) {
    uint32_t id = ts->stack.back().id;
    ts->stack.pop_back();
    ts->buffer.pop(id);
    probes::function_pop(id);
}

// The USDT probe of the push on top of the stack, fired after it (see try_push()).
__attribute__((noinline)) inline void fire_push_probe(const ThreadState* ts) {
    size_t depth = ts->stack.size();
    const Entry* caller = depth >= 2 ? &ts->stack[depth - 2] : nullptr;
    probes::function_push(ts->stack.back().id, caller ? caller->id : 0, caller ? caller_line_slow(*caller) : 0);
}

// push() and pop() for the callbacks' common case, with no call in it, so that a callback
// made of them saves no registers: false, with nothing recorded, when the event needs a call
// (a new chunk, a longer stack, a clock other than the TSC); the caller then takes push() or
// pop(). The probe fires last, with nothing live across its call.
__attribute__((always_inline)) inline bool try_push(ThreadState* ts, FunctionRecord* record, const void* key,
                                                    bool is_c, uint32_t caller, uint32_t caller_offset) {
    std::vector<Entry>& stack = ts->stack;
    if (__builtin_expect(stack.size() == stack.capacity(), 0) ||
        !ts->buffer.try_push(record->id, caller, caller_offset)) {
        return false;
    }
    if (stack.size() == stack.capacity()) {
        __builtin_unreachable();  // checked above: push_back() needs no reallocation
    }
    stack.push_back(Entry{key, nullptr, record->id, 0, is_c});
    if (probes::function_push_enabled()) {
        fire_push_probe(ts);
    }
    return true;
}

__attribute__((always_inline)) inline bool try_pop(ThreadState* ts) {
    uint32_t id = ts->stack.back().id;
    if (!ts->buffer.try_pop(id)) {
        return false;
    }
    ts->stack.pop_back();
    probes::function_pop(id);
    return true;
}

// Tracing stops (disable(), exit) or the thread ends with frames still open: pop them,
// innermost first, so every thread's pushes and pops balance and a reader's stack empties.
inline void close_open_frames(ThreadState* ts) {
    while (!ts->stack.empty()) {
        pop(ts);
    }
}

// ---- C functions -----------------------------------------------------------------------------

inline const void* cfunction_key(PyObject* callable) {
    PyTypeObject* type = Py_TYPE(callable);
    if (type == &PyCFunction_Type || type == &PyCMethod_Type) {
        return reinterpret_cast<PyCFunctionObject*>(callable)->m_ml;
    }
    if (type == &PyMethodDescr_Type) {
        return reinterpret_cast<PyMethodDescrObject*>(callable)->d_method;
    }
    return nullptr;
}

inline CacheSlot* cfunction_lookup(PyObject* callable, PyObject* self_arg, const void* key) {
    size_t index = (reinterpret_cast<uintptr_t>(key) >> 4) & (kCacheSize - 1);
    CacheSlot& slot = g_cache[index];
    if (__builtin_expect(slot.key == key && slot.epoch == g_epoch, 1)) {
        return &slot;
    }
    return cfunction_lookup_slow(callable, self_arg, key, slot);
}

inline void push_c(ThreadState* ts, PyObject* callable, PyObject* self_arg, const void* key, uint32_t caller_offset) {
    CacheSlot* slot = cfunction_lookup(callable, self_arg, key);
    FunctionRecord* record = slot->record;
    if (!record) {
        return;
    }
    if (__builtin_expect(!ts->pending.empty(), 0)) {
        flush_pending(ts, nullptr, nullptr);
    }
    if (__builtin_expect(slot->flush_first, 0)) {
        finish_trace();  // os._exit() skips atexit: this is the last chance to write the file
        return;
    }
    uint32_t caller = ts->stack.empty() ? 0 : ts->stack.back().id;
    push(ts, record, key, nullptr, true, caller, caller_offset);
}

inline void pop_c(ThreadState* ts, const void* key) {
    if (!ts->stack.empty() && ts->stack.back().key == key && ts->stack.back().is_c) {
        pop(ts);
        if (__builtin_expect(key == g_fork_return_key, 0)) {
            fork_call_returned(ts);
        }
    }
}

}  // namespace etwtrace::py::instrument

#pragma GCC visibility pop
