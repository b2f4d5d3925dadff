// instrument_profile.cpp - instrumented mode on CPython 3.9 - 3.11: a C profile function
// (PyEval_SetProfile) on every thread. Threads running at enable() are hooked through the
// interpreter's thread list; new ones through threading's bootstrap (threading.setprofile)
// or, for _thread.start_new_thread, a wrapper that sets the profile function first.
#include "python/instrument_state.h"
#include "python/process_hooks.h"

namespace etwtrace::py::instrument {
namespace {

// ---- profile hook (3.9 - 3.11) ---------------------------------------------------------------

// The caller's instruction offset for a push. `caller` is the frame the event names as
// calling (CALL: the called frame's f_back; C_CALL: the event's frame): a live frame. The
// frame pointer kept in the shadow stack is never dereferenced, only compared: if the top is
// not that frame (it was pushed by a frame whose return went unseen), the offset is 0.
inline uint32_t profile_caller_offset(const ThreadState* ts, PyFrameObject* caller) {
    if (ts->stack.empty()) {
        return 0;
    }
    const Entry& top = ts->stack.back();
    if (top.is_c || !top.frame || top.frame != caller || !caller) {
        return top.call_offset;
    }
    int lasti = compat::frame_object_lasti_bytes(caller);
    return lasti > 0 ? static_cast<uint32_t>(lasti) : 0;
}

// sys.setprofile and _lsprof.Profiler.enable (cProfile): a call to either replaces this
// thread's profile function (there is one slot per thread), so the recording of this thread
// ends there. It cannot be kept: the trace says so with a lost event.
const void* g_displacing[2] = {nullptr, nullptr};

const void* method_key(const char* module, const char* attr, const char* method) {
    compat::SavedException saved;
    PyObject* mod = PyImport_ImportModule(module);
    PyObject* obj = mod ? PyObject_GetAttrString(mod, attr) : nullptr;
    PyObject* fn = obj && method ? PyObject_GetAttrString(obj, method) : obj;
    if (fn != obj) {
        Py_XDECREF(obj);
    }
    const void* key = fn ? cfunction_key(fn) : nullptr;
    Py_XDECREF(fn);
    Py_XDECREF(mod);
    PyErr_Clear();
    return key;
}

// The program installs its own profile function on this thread, where untraced none was set.
__attribute__((noinline)) void note_displaced(const void* key) {
    add_lost_events(1);
    if (is_profile_installer(key)) {
        note_unprofiled_installer_call(key);
    }
}

int profile_hook(PyObject*, PyFrameObject* frame, int what, PyObject* arg) {
    ThreadState* ts = current(what == PyTrace_CALL);
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
        PyFrameObject* back = PyFrame_GetBack(frame);  // alive while `frame` runs
        uint32_t offset = profile_caller_offset(ts, back);
        Py_XDECREF(back);
        push(ts, record, frame, frame, false, caller, offset);
        break;
    }
    case PyTrace_RETURN:
        if (!ts->stack.empty() && ts->stack.back().key == frame) {
            pop(ts);
        }
        break;
    case PyTrace_C_CALL: {
        const void* key = cfunction_key(arg);
        if (__builtin_expect(key == g_displacing[0] || key == g_displacing[1], 0) && key) {
            note_displaced(key);
        }
        if (key) {
            push_c(ts, arg, nullptr, key, profile_caller_offset(ts, frame));
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

// A thread that starts while tracing: give it the C profile function.
void profile_this_thread() {
    if (g_enabled && !g_use_monitoring) {
        compat::set_thread_profile(PyThreadState_Get(), profile_hook, nullptr);
    }
}

// Called by threading's bootstrap (threading.setprofile) in every new thread: swaps itself
// for the C profile function.
PyObject* thread_bootstrap(PyObject*, PyObject*) {
    profile_this_thread();
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
    profile_this_thread();
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
    compat::SavedException saved;
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
}

}  // namespace

bool install_profile_hooks() {
    g_displacing[0] = method_key("sys", "setprofile", nullptr);
    g_displacing[1] = method_key("_lsprof", "Profiler", "enable");
    // The C profile function goes on every thread first, before anything that can run Python
    // code and so switch the GIL (threading.setprofile): enable() captured the other threads'
    // running frames, and they must not return from (or enter) frames unseen in between.
    if (compat::set_profile_all_threads(profile_hook, nullptr) != 0) {
        return false;
    }
    if (!call_with_builtin("threading", "setprofile", &thread_bootstrap_def)) {
        return false;
    }
    hook_start_new_thread(true);
    return true;
}

void remove_profile_hooks() {
    hook_start_new_thread(false);
    compat::set_profile_all_threads(nullptr, nullptr);
    PyObject* threading = PyImport_ImportModule("threading");
    if (threading) {
        PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", Py_None);
        Py_XDECREF(r);
        Py_DECREF(threading);
    }
    PyErr_Clear();
}

}  // namespace etwtrace::py::instrument
