// process_hooks.h - registering our C functions with the interpreter's own hook points
// (atexit, os.register_at_fork, threading.setprofile), shared by the tracing modes. A mode that
// writes a trace file (instrumented, sampler) supplies its four process callbacks as a
// ProcessHooks and registers them once with install_process_hooks().
#pragma once

#include "python/compat.h"

namespace etwtrace::py {

// Calls `module`.`method`(f), f a new builtin made from `def`. False with an exception set.
inline bool call_with_builtin(const char* module, const char* method, PyMethodDef* def) {
    PyObject* mod = PyImport_ImportModule(module);
    PyObject* fn = mod ? PyCFunction_New(def, nullptr) : nullptr;
    PyObject* result = fn ? PyObject_CallMethod(mod, method, "O", fn) : nullptr;
    Py_XDECREF(result);
    Py_XDECREF(fn);
    Py_XDECREF(mod);
    return result != nullptr;
}

// os.register_at_fork(after_in_child=f), f a new builtin made from `def`. False with an
// exception set.
inline bool register_after_fork_in_child(PyMethodDef* def) {
    PyObject* os = PyImport_ImportModule("os");
    PyObject* register_at_fork = os ? PyObject_GetAttrString(os, "register_at_fork") : nullptr;
    PyObject* callback = register_at_fork ? PyCFunction_New(def, nullptr) : nullptr;
    PyObject* args = callback ? PyTuple_New(0) : nullptr;
    PyObject* kwargs = args ? Py_BuildValue("{sO}", "after_in_child", callback) : nullptr;
    PyObject* result = kwargs ? PyObject_Call(register_at_fork, args, kwargs) : nullptr;
    Py_XDECREF(result);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(callback);
    Py_XDECREF(register_at_fork);
    Py_XDECREF(os);
    return result != nullptr;
}

// os.register_at_fork(before=before, after_in_parent=parent): new builtins made from the
// defs. False with an exception set.
inline bool register_around_fork(PyMethodDef* before, PyMethodDef* parent) {
    PyObject* os = PyImport_ImportModule("os");
    PyObject* register_at_fork = os ? PyObject_GetAttrString(os, "register_at_fork") : nullptr;
    PyObject* b = register_at_fork ? PyCFunction_New(before, nullptr) : nullptr;
    PyObject* p = b ? PyCFunction_New(parent, nullptr) : nullptr;
    PyObject* args = p ? PyTuple_New(0) : nullptr;
    PyObject* kwargs = args ? Py_BuildValue("{sOsO}", "before", b, "after_in_parent", p) : nullptr;
    PyObject* result = kwargs ? PyObject_Call(register_at_fork, args, kwargs) : nullptr;
    Py_XDECREF(result);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(p);
    Py_XDECREF(b);
    Py_XDECREF(register_at_fork);
    Py_XDECREF(os);
    return result != nullptr;
}

// The callbacks a trace-writing mode needs around the process's life: at exit (finish the
// file), and around fork() (before: stop our threads; after, in the parent: let them run
// again; after, in the child: start the child's own file).
struct ProcessHooks {
    PyMethodDef* at_exit;
    PyMethodDef* before_fork;
    PyMethodDef* after_fork_parent;
    PyMethodDef* after_fork_child;
    bool installed = false;  // registered already: the interpreter keeps them for the process
};

// Registers `hooks` with atexit and os.register_at_fork the first time it is called for them.
// False with an exception set.
inline bool install_process_hooks(ProcessHooks& hooks) {
    if (hooks.installed) {
        return true;
    }
    if (!call_with_builtin("atexit", "register", hooks.at_exit) ||
        !register_after_fork_in_child(hooks.after_fork_child) ||
        !register_around_fork(hooks.before_fork, hooks.after_fork_parent)) {
        return false;
    }
    hooks.installed = true;
    return true;
}

}  // namespace etwtrace::py
