// instrument_monitoring.cpp - instrumented mode on CPython 3.12+: sys.monitoring (PEP 669)
// with C-implemented callbacks for PY_START/RESUME/THROW, PY_RETURN/YIELD/UNWIND, CALL and
// C_RETURN/C_RAISE, registered under one tool id for all threads.
#include <iterator>

#include "python/instrument_state.h"

namespace etwtrace::py::instrument {
namespace {

int g_tool_id = -1;
PyObject* g_disable = nullptr;  // sys.monitoring.DISABLE

// ---- sys.monitoring callbacks (3.12+) --------------------------------------------------------

inline PyObject* none() { Py_RETURN_NONE; }

inline PyObject* disable_result() {
    Py_INCREF(g_disable);
    return g_disable;
}

inline uint32_t monitoring_caller_offset(const ThreadState* ts) {
    return ts->stack.empty() ? 0 : ts->stack.back().call_offset;
}

// The callbacks below handle their common case (a thread already tracing, a traced function
// whose definition is written, room in the chunk and the stack) with no call, so that they
// save no registers; everything else goes to their general version.

// PY_START, PY_RESUME, PY_THROW (code, offset[, exception])
__attribute__((noinline)) PyObject* mon_enter_general(PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current(/*entering=*/true);
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

PyObject* mon_enter(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = t_slot.state;
    if (thread_state_current() && ts && nargs >= 1) {
        FunctionRecord* record = registry().lookup_cached(reinterpret_cast<PyCodeObject*>(args[0]));
        if (record && ts->pending.empty()) {
            uint32_t caller = ts->stack.empty() ? 0 : ts->stack.back().id;
            if (try_push(ts, record, args[0], false, caller, monitoring_caller_offset(ts))) {
                return none();
            }
        }
    }
    return mon_enter_general(args, nargs);
}

// PY_RETURN, PY_YIELD (code, offset, value): disableable for code we do not trace.
__attribute__((noinline)) PyObject* mon_leave_general(PyObject* const* args, Py_ssize_t nargs) {
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

PyObject* mon_leave(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = t_slot.state;
    if (thread_state_current() && ts && nargs >= 1 && !ts->stack.empty() && ts->stack.back().key == args[0] &&
        try_pop(ts)) {
        return none();
    }
    return mon_leave_general(args, nargs);
}

// PY_UNWIND (code, offset, exception)
PyObject* mon_unwind(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (ts && nargs >= 1 && !ts->stack.empty() && ts->stack.back().key == args[0]) {
        pop(ts);
    }
    return none();
}

// Out of line, so the callback's common case (a Python callable) saves no registers.
__attribute__((noinline)) PyObject* call_c_function(ThreadState* ts, PyObject* code, PyObject* callable,
                                                    PyObject* self_arg, const void* key) {
    if (__builtin_expect(is_profile_installer(key), 0) &&
        !others_watch_calls(reinterpret_cast<PyCodeObject*>(code))) {
        note_unprofiled_installer_call(key);
    }
    push_c(ts, callable, self_arg, key, monitoring_caller_offset(ts));
    return none();
}

// CALL's callable (args[2]), when it is a C function: its call starts (a C-call event).
inline PyObject* record_c_call(ThreadState* ts, PyObject* const* args) {
    const void* key = cfunction_key(args[2]);
    return key ? call_c_function(ts, args[0], args[2], args[3], key) : none();
}

// CALL (code, offset, callable, arg0)
__attribute__((noinline)) PyObject* mon_call_general(PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = current();
    if (!ts || nargs < 4) {
        return none();
    }
    if (!ts->stack.empty()) {
        Entry& top = ts->stack.back();
        if (top.key == args[0]) {
            top.call_offset = compat::monitoring_offset(args[1]);
        }
    }
    return record_c_call(ts, args);
}

PyObject* mon_call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    ThreadState* ts = t_slot.state;
    if (!thread_state_current() || nargs < 4) {
        return mon_call_general(args, nargs);
    }
    if (!ts) {
        return none();
    }
    if (!ts->stack.empty()) {
        Entry& top = ts->stack.back();
        if (top.key == args[0] && !compat::monitoring_offset_without_call(args[1], top.call_offset)) {
            return mon_call_general(args, nargs);
        }
    }
    return record_c_call(ts, args);
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

// Claims a sys.monitoring tool id under `name`: 4 or 3, which CPython leaves to tools
// without a well-known id, so that the program's own profiler (cProfile, which takes
// PROFILER_ID = 2) still works; 2 only when both are taken. Returns -1 with an exception set
// when all are taken.
int claim_tool_id(PyObject* monitoring, const char* name) {
    for (int id : {4, 3, 2}) {
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
    compat::SavedException saved;
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
}

}  // namespace

bool others_watch_calls(PyCodeObject* code) {
    compat::SavedException saved;
    // The legacy profiler (sys.setprofile, tool 6) watches calls everywhere while any thread
    // has a profile function; sys.settrace's tool never watches CALL.
    PyInterpreterState* interp = PyThreadState_Get()->interp;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
        if (compat::thread_profile_function(t)) {
            return true;
        }
    }
    PyObject* monitoring = monitoring_module();
    PyObject* events = monitoring ? PyObject_GetAttrString(monitoring, "events") : nullptr;
    PyObject* call_bit = events ? PyObject_GetAttrString(events, "CALL") : nullptr;
    long call = call_bit ? PyLong_AsLong(call_bit) : 0;
    bool watched = false;
    for (int tool = 0; call > 0 && !watched && tool < 6; ++tool) {  // 0 - 5: the tools a program can claim
        if (tool == g_tool_id) {
            continue;
        }
        PyObject* global = PyObject_CallMethod(monitoring, "get_events", "i", tool);
        PyErr_Clear();  // a tool id CPython refuses watches nothing
        PyObject* local = PyObject_CallMethod(monitoring, "get_local_events", "iO", tool, code);
        PyErr_Clear();
        watched = (global && (PyLong_AsLong(global) & call)) || (local && (PyLong_AsLong(local) & call));
        Py_XDECREF(global);
        Py_XDECREF(local);
    }
    Py_XDECREF(call_bit);
    Py_XDECREF(events);
    Py_XDECREF(monitoring);
    PyErr_Clear();
    return watched;
}

bool install_monitoring_hooks() {
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
        compat::SavedException saved;  // the install error is the one to report
        PyObject* r = PyObject_CallMethod(monitoring, "free_tool_id", "i", id);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    Py_DECREF(monitoring);
    g_tool_id = ok ? id : -1;
    return ok;
}

void remove_monitoring_hooks() {
    PyObject* monitoring = monitoring_module();
    if (monitoring) {
        uninstall_monitoring(monitoring, g_tool_id, kMonitoringBindings, std::size(kMonitoringBindings));
        Py_DECREF(monitoring);
    } else {
        PyErr_Clear();
    }
    g_tool_id = -1;
}

}  // namespace etwtrace::py::instrument
