// sampler_thread_start.cpp - a thread started through `threading` is sampled from its first
// instruction, not from the drain thread's next rescan (up to kDrainInterval later).
//
// While the sampler is enabled, threading's low-level start function (`_start_new_thread`,
// 3.13: `_start_joinable_thread`) is replaced by a C function that passes the same arguments
// to the original, the thread's function wrapped in a C callable: the new thread, holding the
// GIL, registers (arms the clock of) itself and then calls the function. Both are C, so no
// frame is added to a traceback and an exception passes through unchanged. Threads started
// otherwise (`_thread.start_new_thread` directly, C threads calling into Python) are found by
// the rescan as before. disable() puts the original back unless someone replaced it since.
#include "python/sampler_state.h"

namespace etwtrace::py::sampling {
namespace {

struct ThreadEntry {
    PyObject_HEAD
    PyObject* function;
};

void thread_entry_dealloc(PyObject* self) {
    Py_XDECREF(reinterpret_cast<ThreadEntry*>(self)->function);
    PyObject_Free(self);
}

PyObject* thread_entry_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    register_current_thread();
    return PyObject_Call(reinterpret_cast<ThreadEntry*>(self)->function, args, kwargs);
}

PyTypeObject g_thread_entry_type = {
    PyVarObject_HEAD_INIT(nullptr, 0) "etwtrace._sampler_thread_entry",  // tp_name
    sizeof(ThreadEntry),                                                // tp_basicsize
};

PyObject* g_threading = nullptr;     // the module patched (a new reference while patched)
const char* g_attribute = nullptr;   // which function of it
PyObject* g_original = nullptr;      // its original value
PyObject* g_replacement = nullptr;   // our function object

PyObject* start_thread(PyObject*, PyObject* args, PyObject* kwargs) {
    if (!g_original) {
        PyErr_SetString(PyExc_RuntimeError, "etwtrace: threading's start function is gone");
        return nullptr;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        return PyObject_Call(g_original, args, kwargs);  // the original states the mistake
    }
    PyObject* wrapped = PyTuple_New(n);
    if (!wrapped) {
        return nullptr;
    }
    auto* entry = PyObject_New(ThreadEntry, &g_thread_entry_type);
    if (!entry) {
        Py_DECREF(wrapped);
        return nullptr;
    }
    PyObject* function = PyTuple_GET_ITEM(args, 0);
    Py_INCREF(function);
    entry->function = function;
    PyTuple_SET_ITEM(wrapped, 0, reinterpret_cast<PyObject*>(entry));
    for (Py_ssize_t i = 1; i < n; ++i) {
        PyObject* item = PyTuple_GET_ITEM(args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(wrapped, i, item);
    }
    PyObject* result = PyObject_Call(g_original, wrapped, kwargs);
    Py_DECREF(wrapped);
    return result;
}

PyMethodDef g_start_thread_def = {"_etwtrace_sampler_start_thread", reinterpret_cast<PyCFunction>(
                                      reinterpret_cast<void (*)()>(start_thread)),
                                  METH_VARARGS | METH_KEYWORDS, nullptr};

}  // namespace

bool install_thread_start_hook() {
    if (g_threading) {
        return true;
    }
    if (!g_thread_entry_type.tp_call) {
        g_thread_entry_type.tp_flags = Py_TPFLAGS_DEFAULT;
        g_thread_entry_type.tp_dealloc = thread_entry_dealloc;
        g_thread_entry_type.tp_call = thread_entry_call;
        if (PyType_Ready(&g_thread_entry_type) < 0) {
            return false;
        }
    }
    // Only if the program has imported threading: importing it here would change the program.
    PyObject* modules = PyImport_GetModuleDict();
    PyObject* threading = PyDict_GetItemString(modules, "threading");
    if (!threading) {
        return true;  // threads started later are found by the rescan
    }
    const char* attribute = PyObject_HasAttrString(threading, "_start_joinable_thread") ? "_start_joinable_thread"
                                                                                        : "_start_new_thread";
    PyObject* original = PyObject_GetAttrString(threading, attribute);
    if (!original) {
        PyErr_Clear();
        return true;
    }
    if (!g_replacement) {
        g_replacement = PyCFunction_New(&g_start_thread_def, nullptr);
        if (!g_replacement) {
            Py_DECREF(original);
            return false;
        }
    }
    if (PyObject_SetAttrString(threading, attribute, g_replacement) < 0) {
        Py_DECREF(original);
        PyErr_Clear();
        return true;
    }
    Py_INCREF(threading);
    g_threading = threading;
    g_attribute = attribute;
    Py_XSETREF(g_original, original);  // kept after removal: a copy of our function still works
    return true;
}

void remove_thread_start_hook() {
    if (!g_threading) {
        return;
    }
    PyObject* current = PyObject_GetAttrString(g_threading, g_attribute);
    if (current == g_replacement) {
        if (PyObject_SetAttrString(g_threading, g_attribute, g_original) < 0) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(current);
    PyErr_Clear();
    Py_CLEAR(g_threading);
}

}  // namespace etwtrace::py::sampling
