// bindings.cpp - the whole Python-visible surface of the native module etwtrace._etwtrace.
//
// Plain CPython C API (no binding library): the surface is a handful of functions, the hot
// paths live in the hooks and never cross this file, and the module then builds against any
// CPython 3.9+ with nothing but the interpreter's own headers.
#include <cstring>
#include <string_view>

#include "python/compat.h"
#include "python/stack_mode.h"  // _bench_noop_hook (benchmarks/bench_stack.py)
#include "python/tracer_mode.h"

#if defined(__x86_64__)
#define PLATFORM_TRIPLE "x86_64-linux"
#elif defined(__aarch64__)
#define PLATFORM_TRIPLE "aarch64-linux"
#else
#define PLATFORM_TRIPLE "unknown"
#endif

#ifndef ETWTRACE_VERSION
#define ETWTRACE_VERSION "unknown"
#endif

namespace etwtrace::py {
namespace {

TracerMode* active_mode = nullptr;

TracerMode* mode_by_name(const char* name) {
    if (std::strcmp(name, "stack") == 0) {
        return &stack_mode();
    }
    if (std::strcmp(name, "instrumented") == 0 || std::strcmp(name, "instrument") == 0) {
        return &instrument_mode();
    }
    PyErr_Format(PyExc_ValueError, "'%s' is not a tracing mode; use 'stack' or 'instrumented'", name);
    return nullptr;
}

PyObject* py_enable(PyObject*, PyObject* args) {
    const char* mode_name = nullptr;
    PyObject* ignored = nullptr;
    PyObject* include = nullptr;
    PyObject* options = nullptr;
    if (!PyArg_ParseTuple(args, "sO!O!|O!:enable", &mode_name, &PySet_Type, &ignored, &PyList_Type,
                          &include, &PyDict_Type, &options)) {
        return nullptr;
    }
    TracerMode* mode = mode_by_name(mode_name);
    if (!mode) {
        return nullptr;
    }
    if (active_mode) {
        PyErr_Format(PyExc_RuntimeError,
                     "etwtrace: a %s tracer is already active; disable it before enabling another",
                     active_mode->name());
        return nullptr;
    }
    PyObject* empty = nullptr;
    if (!options) {
        options = empty = PyDict_New();
        if (!options) {
            return nullptr;
        }
    }
    bool ok = mode->enable(ignored, include, options);
    Py_XDECREF(empty);
    if (!ok) {
        return nullptr;
    }
    active_mode = mode;
    Py_RETURN_NONE;
}

PyObject* py_disable(PyObject*, PyObject*) {
    if (!active_mode) {
        Py_RETURN_NONE;
    }
    TracerMode* mode = active_mode;
    active_mode = nullptr;
    if (!mode->disable()) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* py_write_mark(PyObject*, PyObject* args) {
    const char* text = nullptr;
    Py_ssize_t length = 0;
    int kind = 0;
    if (!PyArg_ParseTuple(args, "s#i:write_mark", &text, &length, &kind)) {
        return nullptr;
    }
    if (kind < 0 || kind > 3) {
        PyErr_SetString(PyExc_ValueError, "mark kind must be 0 (mark), 1 (start), 2 (stop) or 3 (stack)");
        return nullptr;
    }
    if (active_mode &&
        !active_mode->write_mark(std::string_view(text, static_cast<size_t>(length)), static_cast<MarkKind>(kind))) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* py_active_mode(PyObject*, PyObject*) {
    if (!active_mode) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromString(active_mode->name());
}

PyObject* py_technical_info(PyObject*, PyObject* args) {
    const char* mode_name = "stack";
    if (!PyArg_ParseTuple(args, "|s:_get_technical_info", &mode_name)) {
        return nullptr;
    }
    TracerMode* mode = mode_by_name(mode_name);
    if (!mode) {
        return nullptr;
    }
    PyObject* extra = mode->technical_info();
    if (!extra) {
        return nullptr;
    }
#ifdef ETWTRACE_HAVE_SDT
    const char* probes = "usdt";
#else
    const char* probes = "no-usdt";
#endif
    std::string_view interpreter = Py_GetVersion();  // "3.12.1 (main, ...) [GCC ...]"
    interpreter = interpreter.substr(0, interpreter.find(' '));
    PyObject* head = Py_BuildValue("(ssss#ss)", "_etwtrace", mode->name(), ETWTRACE_VERSION, interpreter.data(),
                                   static_cast<Py_ssize_t>(interpreter.size()), probes, PLATFORM_TRIPLE);
    if (!head) {
        Py_DECREF(extra);
        return nullptr;
    }
    PyObject* result = PySequence_Concat(head, extra);
    Py_DECREF(head);
    Py_DECREF(extra);
    return result;
}

PyMethodDef module_methods[] = {
    {"enable", py_enable, METH_VARARGS,
     "enable(mode, ignored_files, include_prefixes, options={})\n\nStart tracing in 'stack' or "
     "'instrumented' mode. Only one tracer may be active at a time."},
    {"disable", py_disable, METH_NOARGS, "disable()\n\nStop the active tracer (no-op if none)."},
    {"write_mark", py_write_mark, METH_VARARGS,
     "write_mark(text, kind)\n\nEmit a PythonMark (kind 0), range start (1) or stop (2), or a "
     "PythonStackSample (3) through the active tracer."},
    {"active_mode", py_active_mode, METH_NOARGS, "active_mode()\n\nName of the active mode, or None."},
    {"_get_technical_info", py_technical_info, METH_VARARGS,
     "_get_technical_info(mode='stack')\n\nA tuple describing the native module, for bug reports."},
    // Test-only: the bare PEP 523 hook whose cost is the floor of stack sampling (benchmarks).
    {"_bench_noop_hook", bench_noop_hook, METH_O,
     "_bench_noop_hook(enable)\n\nInstall/remove a no-op eval-frame hook (benchmark floor)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "etwtrace._etwtrace",
    "Native core of etwtrace: eval-frame and call hooks, thunks, symbol files, trace files.", -1,
    module_methods, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace
}  // namespace etwtrace::py

PyMODINIT_FUNC PyInit__etwtrace() {
    return PyModule_Create(&etwtrace::py::module_def);
}
