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
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "probes/probes.h"
#include "python/function_registry.h"
#include "python/instrument_api.h"
#include "python/tracer_mode.h"
#include "trace/trace_writer.h"

namespace etwtrace::py {
namespace {

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

// ---- global state (all of it used under the GIL, except where threads_mu says) -------------

uint32_t g_epoch = 1;            // bumped by enable/disable/fork: thread-local state goes stale
bool g_enabled = false;
TraceWriter* g_writer = nullptr;
std::string g_user_path;         // trace_path option, or empty
std::mutex* g_threads_mu = new std::mutex();  // guards g_threads against exiting threads
std::vector<ThreadState*> g_threads;
std::vector<std::pair<FunctionRecord*, LineTable>> g_published;  // replayed into fork children
std::unordered_map<PyThreadState*, std::vector<Entry>>* g_replay =
    new std::unordered_map<PyThreadState*, std::vector<Entry>>();
constexpr size_t kCacheSize = 4096;
CacheSlot g_cache[kCacheSize];
bool g_use_monitoring = false;
int g_tool_id = -1;
PyObject* g_disable = nullptr;  // sys.monitoring.DISABLE
bool g_process_hooks_installed = false;

// initial-exec: one TLS access is a single %fs-relative load instead of a __tls_get_addr
// call (5% of a traced fib() otherwise). glibc keeps static TLS room for dlopen()ed modules
// that need a few bytes like this.
struct ThreadSlot {
    ThreadState* state = nullptr;
    uint32_t epoch = 0;
};
__attribute__((tls_model("initial-exec"))) thread_local ThreadSlot t_slot;

uint64_t current_tid() { return static_cast<uint64_t>(syscall(SYS_gettid)); }

ThreadState* attach_thread();

inline ThreadState* current() {
    if (__builtin_expect(t_slot.epoch == g_epoch, 1)) {
        return t_slot.state;
    }
    return attach_thread();
}

void close_open_frames(ThreadState* ts);

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

// ---- line tables -----------------------------------------------------------------------------

void append_run(LineTable& runs, long offset, long line) {
    if (offset < 0 || line < 0) {
        return;
    }
    if (!runs.empty() && runs.back().offset == static_cast<uint32_t>(offset)) {
        runs.back().line = static_cast<int32_t>(line);
        return;
    }
    if (!runs.empty() && runs.back().line == static_cast<int32_t>(line)) {
        return;
    }
    runs.push_back({static_cast<uint32_t>(offset), static_cast<int32_t>(line)});
}

// Bytecode byte offset -> line runs, read once per published function.
LineTable line_table(PyCodeObject* code) {
    LineTable runs;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (compat::code_has_co_lines()) {
        PyObject* it = PyObject_CallMethod(reinterpret_cast<PyObject*>(code), "co_lines", nullptr);
        PyObject* iter = it ? PyObject_GetIter(it) : nullptr;
        Py_XDECREF(it);
        long last_line = compat::code_first_line(code);
        while (iter) {
            PyObject* item = PyIter_Next(iter);
            if (!item) {
                break;
            }
            long start = -1, line = -1;
            if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 3) {
                start = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
                PyObject* l = PyTuple_GET_ITEM(item, 2);
                line = l == Py_None ? last_line : PyLong_AsLong(l);
            }
            Py_DECREF(item);
            append_run(runs, start, line);
            if (line >= 0) {
                last_line = line;
            }
        }
        Py_XDECREF(iter);
    } else {
        PyObject* lnotab = compat::code_lnotab(code);
        if (lnotab && PyBytes_Check(lnotab)) {
            const auto* p = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(lnotab));
            Py_ssize_t n = PyBytes_GET_SIZE(lnotab) / 2;
            long addr = 0, line = compat::code_first_line(code);
            append_run(runs, 0, line);
            for (Py_ssize_t i = 0; i < n; ++i) {
                addr += p[2 * i];
                line += static_cast<signed char>(p[2 * i + 1]);
                append_run(runs, addr, line);
            }
        }
    }
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return runs;
}

// ---- events ----------------------------------------------------------------------------------

void write_definition(ThreadState* ts, FunctionRecord* record, const LineTable& lines) {
    ts->buffer.function(record->id, record->is_python, record->first_line, 0, 0, record->filename,
                        record->qualname, lines);
    if (probes::function_enabled()) {
        probes::function(record->id, 0, 0, record->first_line, record->filename.c_str(), record->qualname.c_str(),
                         record->is_python ? 1 : 0);
    }
}

// Writes the PythonFunction events the registry asked for while looking `code` up.
__attribute__((noinline)) void flush_pending(ThreadState* ts, PyCodeObject* code, FunctionRecord* looked_up) {
    std::vector<FunctionRecord*> pending;
    pending.swap(ts->pending);
    for (FunctionRecord* record : pending) {
        LineTable lines;
        if (record->is_python && code && record == looked_up) {
            lines = line_table(code);
        }
        write_definition(ts, record, lines);
        g_published.emplace_back(record, std::move(lines));
    }
}

int32_t caller_line_slow(const Entry& top) {
    if (top.is_c) {
        return 0;
    }
    if (top.frame) {
        return PyFrame_GetLineNumber(top.frame);
    }
    return PyCode_Addr2Line(static_cast<PyCodeObject*>(const_cast<void*>(top.key)), static_cast<int>(top.call_offset));
}

inline void push(ThreadState* ts, FunctionRecord* record, const void* key, PyFrameObject* frame, bool is_c,
                 uint32_t caller, uint32_t caller_offset) {
    ts->buffer.push(record->id, caller, caller_offset);
    if (probes::function_push_enabled()) {
        probes::function_push(record->id, caller, ts->stack.empty() ? 0 : caller_line_slow(ts->stack.back()));
    }
    ts->stack.push_back(Entry{key, frame, record->id, 0, is_c});
}

inline void pop(ThreadState* ts) {
    uint32_t id = ts->stack.back().id;
    ts->stack.pop_back();
    ts->buffer.pop(id);
    probes::function_pop(id);
}

// Tracing stops (disable(), exit) or the thread ends with frames still open: pop them,
// innermost first, so every thread's pushes and pops balance and a reader's stack empties.
void close_open_frames(ThreadState* ts) {
    while (!ts->stack.empty()) {
        pop(ts);
    }
}

void finish_trace();  // disable + close: used before os._exit

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

bool is_own_module(PyObject* self) {
    if (!self || !PyModule_Check(self)) {
        return false;
    }
    const char* name = PyModule_GetName(self);
    if (!name) {
        PyErr_Clear();
        return false;
    }
    return std::strcmp(name, "etwtrace._etwtrace") == 0;
}

__attribute__((noinline)) CacheSlot* cfunction_lookup_slow(PyObject* callable, PyObject* self_arg, const void* key,
                                                           CacheSlot& slot) {
    FunctionRecord* record = nullptr;
    bool cacheable = true;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyCFunction_Check(callable)) {
        if (!is_own_module(reinterpret_cast<PyCFunctionObject*>(callable)->m_self)) {
            record = registry().lookup_cfunction(callable);
        }
    } else {
        // A method descriptor called with self: bind it once to name it like the interpreter's
        // own C_CALL events do ("list.append").
        auto* descr = reinterpret_cast<PyMethodDescrObject*>(callable);
        if (self_arg && PyObject_TypeCheck(self_arg, descr->d_common.d_type)) {
            PyObject* bound = Py_TYPE(callable)->tp_descr_get(callable, self_arg, reinterpret_cast<PyObject*>(Py_TYPE(self_arg)));
            if (bound) {
                if (PyCFunction_Check(bound)) {
                    record = registry().lookup_cfunction(bound);
                }
                Py_DECREF(bound);
            }
        } else {
            cacheable = false;
        }
    }
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    static CacheSlot uncached;
    CacheSlot* out = cacheable ? &slot : &uncached;
    out->key = key;
    out->record = record;
    out->epoch = g_epoch;
    out->flush_first = record && !record->is_python && record->qualname == "_exit" &&
                       (record->filename == "posix" || record->filename == "os");
    return out;
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
    }
}

// ---- profile hook (3.9 - 3.11) ---------------------------------------------------------------

inline uint32_t profile_caller_offset(const ThreadState* ts) {
    if (ts->stack.empty()) {
        return 0;
    }
    const Entry& top = ts->stack.back();
    if (top.is_c || !top.frame) {
        return top.call_offset;
    }
    int lasti = compat::frame_object_lasti_bytes(top.frame);
    return lasti > 0 ? static_cast<uint32_t>(lasti) : 0;
}

int profile_hook(PyObject*, PyFrameObject* frame, int what, PyObject* arg) {
    ThreadState* ts = current();
    if (!ts) {
        return 0;
    }
    switch (what) {
    case PyTrace_CALL: {
        PyCodeObject* code = compat::frame_object_code(frame);
        FunctionRecord* record = registry().lookup(code);
        if (!record) {
            return 0;
        }
        if (__builtin_expect(!ts->pending.empty(), 0)) {
            flush_pending(ts, code, record);
        }
        uint32_t caller = ts->stack.empty() ? 0 : ts->stack.back().id;
        push(ts, record, frame, frame, false, caller, profile_caller_offset(ts));
        break;
    }
    case PyTrace_RETURN:
        if (!ts->stack.empty() && ts->stack.back().key == frame) {
            pop(ts);
        }
        break;
    case PyTrace_C_CALL: {
        const void* key = cfunction_key(arg);
        if (key) {
            push_c(ts, arg, nullptr, key, profile_caller_offset(ts));
        }
        break;
    }
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION: {
        const void* key = cfunction_key(arg);
        if (key) {
            pop_c(ts, key);
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

// Called by threading's bootstrap (threading.setprofile) in every new thread: swaps itself
// for the C profile function.
PyObject* thread_bootstrap(PyObject*, PyObject*) {
    if (g_enabled && !g_use_monitoring) {
        compat::set_thread_profile(PyThreadState_Get(), profile_hook, nullptr);
    }
    Py_RETURN_NONE;
}
PyMethodDef thread_bootstrap_def = {"_etwtrace_thread_bootstrap", thread_bootstrap, METH_VARARGS, nullptr};

// Threads started with _thread.start_new_thread (not threading) never run threading's
// profile bootstrap, so while tracing the module attribute is a wrapper that starts the thread
// in thread_entry, which sets the profile function first. thread_entry reports an escaping
// exception exactly as _thread would have for the user's function.
PyObject* g_original_start_new_thread = nullptr;

// self: (function, args, kwargs or None)
PyObject* thread_entry(PyObject* packed, PyObject*) {
    if (g_enabled && !g_use_monitoring) {
        compat::set_thread_profile(PyThreadState_Get(), profile_hook, nullptr);
    }
    PyObject* function = PyTuple_GET_ITEM(packed, 0);
    PyObject* kwargs = PyTuple_GET_ITEM(packed, 2);
    PyObject* result = PyObject_Call(function, PyTuple_GET_ITEM(packed, 1), kwargs == Py_None ? nullptr : kwargs);
    if (!result) {
        compat::report_thread_exception(function);
    }
    Py_XDECREF(result);
    Py_RETURN_NONE;
}
PyMethodDef thread_entry_def = {"_etwtrace_thread_entry", thread_entry, METH_NOARGS, nullptr};

PyObject* start_new_thread(PyObject*, PyObject* args) {
    PyObject* original = g_original_start_new_thread;
    PyObject *function = nullptr, *fargs = nullptr, *kwargs = nullptr;
    if (!original) {
        PyErr_SetString(PyExc_RuntimeError, "etwtrace: _thread.start_new_thread is not available");
        return nullptr;
    }
    if (!PyArg_UnpackTuple(args, "start_new_thread", 2, 3, &function, &fargs, &kwargs) ||
        !PyCallable_Check(function) || !PyTuple_Check(fargs) || (kwargs && !PyDict_Check(kwargs))) {
        PyErr_Clear();
        return PyObject_Call(original, args, nullptr);  // its own error messages
    }
    PyObject* packed = PyTuple_Pack(3, function, fargs, kwargs ? kwargs : Py_None);
    PyObject* entry = packed ? PyCFunction_New(&thread_entry_def, packed) : nullptr;
    PyObject* result = entry ? PyObject_CallFunction(original, "O()", entry) : nullptr;
    Py_XDECREF(entry);
    Py_XDECREF(packed);
    return result;
}
PyMethodDef start_new_thread_def = {"start_new_thread", start_new_thread, METH_VARARGS,
                                    "start_new_thread(function, args[, kwargs]) (etwtrace: traced)"};

// Swaps _thread.start_new_thread (and its alias start_new) for the wrapper, or back.
void hook_start_new_thread(bool install) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject* module = PyImport_ImportModule("_thread");
    if (module && install && !g_original_start_new_thread) {
        g_original_start_new_thread = PyObject_GetAttrString(module, "start_new_thread");
        PyObject* wrapper = g_original_start_new_thread ? PyCFunction_New(&start_new_thread_def, nullptr) : nullptr;
        for (const char* name : {"start_new_thread", "start_new"}) {
            PyObject* current = wrapper ? PyObject_GetAttrString(module, name) : nullptr;
            if (current == g_original_start_new_thread) {
                PyObject_SetAttrString(module, name, wrapper);
            }
            Py_XDECREF(current);
        }
        Py_XDECREF(wrapper);
    } else if (module && !install && g_original_start_new_thread) {
        for (const char* name : {"start_new_thread", "start_new"}) {
            PyObject* current = PyObject_GetAttrString(module, name);
            if (current && PyCFunction_Check(current) &&
                reinterpret_cast<PyCFunctionObject*>(current)->m_ml == &start_new_thread_def) {
                PyObject_SetAttrString(module, name, g_original_start_new_thread);
            }
            Py_XDECREF(current);
        }
        // The wrapper may still be held by the program; it keeps working (untraced) through
        // the original, which therefore stays referenced.
    }
    Py_XDECREF(module);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

// ---- sys.monitoring callbacks (3.12+) --------------------------------------------------------

inline PyObject* none() { Py_RETURN_NONE; }

inline PyObject* disable_result() {
    Py_INCREF(g_disable);
    return g_disable;
}

inline uint32_t monitoring_caller_offset(const ThreadState* ts) {
    return ts->stack.empty() ? 0 : ts->stack.back().call_offset;
}

// PY_START, PY_RESUME, PY_THROW (code, offset[, exception])
PyObject* mon_enter(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (!ts || nargs < 1) {
        return none();
    }
    auto* code = reinterpret_cast<PyCodeObject*>(args[0]);
    FunctionRecord* record = registry().lookup(code);
    if (!record) {
        return nargs == 2 ? disable_result() : none();  // PY_THROW (3 args) cannot be disabled
    }
    if (__builtin_expect(!ts->pending.empty(), 0)) {
        flush_pending(ts, code, record);
    }
    uint32_t caller = ts->stack.empty() ? 0 : ts->stack.back().id;
    push(ts, record, code, nullptr, false, caller, monitoring_caller_offset(ts));
    return none();
}

// PY_RETURN, PY_YIELD (code, offset, value): disableable for code we do not trace.
PyObject* mon_leave(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (!ts || nargs < 1) {
        return none();
    }
    if (!ts->stack.empty() && ts->stack.back().key == args[0]) {
        pop(ts);
        return none();
    }
    return registry().lookup(reinterpret_cast<PyCodeObject*>(args[0])) ? none() : disable_result();
}

// PY_UNWIND (code, offset, exception)
PyObject* mon_unwind(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (ts && nargs >= 1 && !ts->stack.empty() && ts->stack.back().key == args[0]) {
        pop(ts);
    }
    return none();
}

// CALL (code, offset, callable, arg0)
PyObject* mon_call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (!ts || nargs < 4) {
        return none();
    }
    if (!ts->stack.empty()) {
        Entry& top = ts->stack.back();
        if (top.key == args[0]) {
            top.call_offset = static_cast<uint32_t>(PyLong_AsUnsignedLong(args[1]));
        }
    }
    const void* key = cfunction_key(args[2]);
    if (key) {
        push_c(ts, args[2], args[3], key, monitoring_caller_offset(ts));
    }
    return none();
}

// C_RETURN, C_RAISE (code, offset, callable, arg0)
PyObject* mon_c_leave(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (ts && nargs >= 3) {
        const void* key = cfunction_key(args[2]);
        if (key) {
            pop_c(ts, key);
        }
    }
    return none();
}

#define ETWTRACE_FASTCALL(fn) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn))
PyMethodDef mon_enter_def = {"py_start", ETWTRACE_FASTCALL(mon_enter), METH_FASTCALL, nullptr};
PyMethodDef mon_leave_def = {"py_return", ETWTRACE_FASTCALL(mon_leave), METH_FASTCALL, nullptr};
PyMethodDef mon_unwind_def = {"py_unwind", ETWTRACE_FASTCALL(mon_unwind), METH_FASTCALL, nullptr};
PyMethodDef mon_call_def = {"call", ETWTRACE_FASTCALL(mon_call), METH_FASTCALL, nullptr};
PyMethodDef mon_c_leave_def = {"c_return", ETWTRACE_FASTCALL(mon_c_leave), METH_FASTCALL, nullptr};

struct MonitoringBinding {
    const char* event;
    PyMethodDef* def;
};
const MonitoringBinding kMonitoringBindings[] = {
    {"PY_START", &mon_enter_def},   {"PY_RESUME", &mon_enter_def}, {"PY_THROW", &mon_enter_def},
    {"PY_RETURN", &mon_leave_def},  {"PY_YIELD", &mon_leave_def},  {"PY_UNWIND", &mon_unwind_def},
    {"CALL", &mon_call_def},        {"C_RETURN", &mon_c_leave_def}, {"C_RAISE", &mon_c_leave_def},
};

PyObject* monitoring_module() {
    PyObject* sys = PyImport_ImportModule("sys");
    if (!sys) {
        return nullptr;
    }
    PyObject* monitoring = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    return monitoring;
}

// Claims a sys.monitoring tool id (PROFILER_ID if free) under `name`; returns -1 with an
// exception set when all are taken.
int claim_tool_id(PyObject* monitoring, const char* name) {
    for (int id : {2, 3, 4}) {
        PyObject* current_name = PyObject_CallMethod(monitoring, "get_tool", "i", id);
        if (!current_name) {
            return -1;
        }
        bool free = current_name == Py_None;
        Py_DECREF(current_name);
        if (free) {
            PyObject* r = PyObject_CallMethod(monitoring, "use_tool_id", "is", id, name);
            if (!r) {
                return -1;
            }
            Py_DECREF(r);
            return id;
        }
    }
    PyErr_SetString(PyExc_RuntimeError, "etwtrace: no free sys.monitoring tool id (2-4 are all in use)");
    return -1;
}

// Registers `bindings` (callable per event) under tool `id` and enables those events.
bool install_monitoring(PyObject* monitoring, int id, const MonitoringBinding* bindings, size_t count) {
    PyObject* events = PyObject_GetAttrString(monitoring, "events");
    if (!events) {
        return false;
    }
    long mask = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < count; ++i) {
        PyObject* bit = PyObject_GetAttrString(events, bindings[i].event);
        PyObject* callback = bit ? PyCFunction_New(bindings[i].def, nullptr) : nullptr;
        PyObject* r = callback ? PyObject_CallMethod(monitoring, "register_callback", "iOO", id, bit, callback) : nullptr;
        ok = r != nullptr;
        if (ok) {
            mask |= PyLong_AsLong(bit);
        }
        Py_XDECREF(r);
        Py_XDECREF(callback);
        Py_XDECREF(bit);
    }
    Py_DECREF(events);
    if (!ok) {
        return false;
    }
    PyObject* r = PyObject_CallMethod(monitoring, "set_events", "il", id, mask);
    Py_XDECREF(r);
    if (!r) {
        return false;
    }
    // Code we returned DISABLE for under an earlier filter generation must report again.
    r = PyObject_CallMethod(monitoring, "restart_events", nullptr);
    Py_XDECREF(r);
    return r != nullptr;
}

void uninstall_monitoring(PyObject* monitoring, int id, const MonitoringBinding* bindings, size_t count) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject* r = PyObject_CallMethod(monitoring, "set_events", "ii", id, 0);
    Py_XDECREF(r);
    PyObject* events = PyObject_GetAttrString(monitoring, "events");
    for (size_t i = 0; events && i < count; ++i) {
        PyObject* bit = PyObject_GetAttrString(events, bindings[i].event);
        if (bit) {
            r = PyObject_CallMethod(monitoring, "register_callback", "iOO", id, bit, Py_None);
            Py_XDECREF(r);
            Py_DECREF(bit);
        }
    }
    Py_XDECREF(events);
    r = PyObject_CallMethod(monitoring, "free_tool_id", "i", id);
    Py_XDECREF(r);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

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

ThreadState* attach_thread() {
    if (!g_enabled || !g_writer) {
        return nullptr;
    }
    auto* ts = new ThreadState();
    ts->tid = current_tid();
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
        replay(ts, entries);
    }
    return ts;
}

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

bool remove_hooks() {
    if (g_use_monitoring) {
        PyObject* monitoring = monitoring_module();
        if (monitoring) {
            uninstall_monitoring(monitoring, g_tool_id, kMonitoringBindings, std::size(kMonitoringBindings));
            Py_DECREF(monitoring);
        } else {
            PyErr_Clear();
        }
        g_tool_id = -1;
        return true;
    }
    hook_start_new_thread(false);
    PyInterpreterState* interp = PyThreadState_Get()->interp;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
        compat::set_thread_profile(t, nullptr, nullptr);
    }
    PyObject* threading = PyImport_ImportModule("threading");
    if (threading) {
        PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", Py_None);
        Py_XDECREF(r);
        Py_DECREF(threading);
    }
    PyErr_Clear();
    return true;
}

void finish_trace() {
    if (!g_enabled) {
        return;
    }
    g_enabled = false;
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
    ThreadState* self = (t_slot.epoch == g_epoch) ? t_slot.state : nullptr;
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
        for (auto& [record, lines] : g_published) {
            write_definition(ts, record, lines);
        }
        replay(ts, stack);
    }
    Py_RETURN_NONE;
}
PyMethodDef after_fork_def = {"_etwtrace_after_fork_child", after_fork_child, METH_NOARGS, nullptr};

bool install_process_hooks() {
    if (g_process_hooks_installed) {
        return true;
    }
    PyObject* atexit = PyImport_ImportModule("atexit");
    PyObject* fn = atexit ? PyCFunction_New(&atexit_def, nullptr) : nullptr;
    PyObject* r = fn ? PyObject_CallMethod(atexit, "register", "O", fn) : nullptr;
    Py_XDECREF(r);
    Py_XDECREF(fn);
    Py_XDECREF(atexit);
    if (!r) {
        return false;
    }
    PyObject* os = PyImport_ImportModule("os");
    fn = os ? PyCFunction_New(&after_fork_def, nullptr) : nullptr;
    PyObject* kwargs = fn ? Py_BuildValue("{sO}", "after_in_child", fn) : nullptr;
    PyObject* reg = kwargs ? PyObject_GetAttrString(os, "register_at_fork") : nullptr;
    PyObject* args = reg ? PyTuple_New(0) : nullptr;
    r = args ? PyObject_Call(reg, args, kwargs) : nullptr;
    Py_XDECREF(r);
    Py_XDECREF(args);
    Py_XDECREF(reg);
    Py_XDECREF(kwargs);
    Py_XDECREF(fn);
    Py_XDECREF(os);
    if (!r) {
        return false;
    }
    g_process_hooks_installed = true;
    return true;
}

bool option_path(PyObject* options, const char* key, std::string& out) {
    PyObject* value = options ? PyDict_GetItemString(options, key) : nullptr;
    if (!value || value == Py_None) {
        return true;
    }
    PyObject* bytes = nullptr;
    if (!PyUnicode_FSConverter(value, &bytes)) {
        return false;
    }
    out.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
    Py_DECREF(bytes);
    return true;
}

bool install_hooks() {
    if (g_use_monitoring) {
        PyObject* monitoring = monitoring_module();
        if (!monitoring) {
            return false;
        }
        if (!g_disable) {
            g_disable = PyObject_GetAttrString(monitoring, "DISABLE");
        }
        int id = g_disable ? claim_tool_id(monitoring, "etwtrace") : -1;
        bool ok = id >= 0 && install_monitoring(monitoring, id, kMonitoringBindings, std::size(kMonitoringBindings));
        if (!ok && id >= 0) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyObject* r = PyObject_CallMethod(monitoring, "free_tool_id", "i", id);
            Py_XDECREF(r);
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
        }
        Py_DECREF(monitoring);
        g_tool_id = ok ? id : -1;
        return ok;
    }
    PyObject* threading = PyImport_ImportModule("threading");
    PyObject* fn = threading ? PyCFunction_New(&thread_bootstrap_def, nullptr) : nullptr;
    PyObject* r = fn ? PyObject_CallMethod(threading, "setprofile", "O", fn) : nullptr;
    Py_XDECREF(r);
    Py_XDECREF(fn);
    Py_XDECREF(threading);
    if (!r) {
        return false;
    }
    hook_start_new_thread(true);
    PyThreadState* self = PyThreadState_Get();
    for (PyThreadState* t = PyInterpreterState_ThreadHead(self->interp); t; t = PyThreadState_Next(t)) {
        if (compat::set_thread_profile(t, profile_hook, nullptr) < 0) {
            return false;
        }
    }
    return true;
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
        if (!option_path(options, "trace_path", path) || !install_process_hooks()) {
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
        if (!registry().configure(ignored, include, [](FunctionRecord& record) {
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
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            finish_trace();
            PyErr_Restore(type, value, tb);
            return false;
        }
        return true;
    }

    bool disable() override {
        finish_trace();
        return true;
    }

    bool write_mark(std::string_view text, MarkKind kind) override {
        ThreadState* ts = current();
        if (ts) {
            ts->buffer.mark(static_cast<format::MarkKind>(kind), text);
        }
        bool stack = kind == MarkKind::StackSample;
        if (stack ? probes::stack_sample_enabled() : probes::mark_enabled()) {
            std::string copy(text);
            if (stack) {
                probes::stack_sample(copy.c_str());
            } else {
                probes::mark(copy.c_str(), static_cast<int>(kind));
            }
        }
        return true;
    }

    PyObject* technical_info() override {
        const char* hook = compat::has_sys_monitoring() ? "sys.monitoring" : "profile";
        return Py_BuildValue("(ss)", hook, instrument_trace_path().c_str());
    }
};

}  // namespace

TracerMode& instrument_mode() {
    static InstrumentMode mode;
    return mode;
}

std::string instrument_trace_path() { return g_writer ? g_writer->path() : std::string(); }

}  // namespace etwtrace::py
