// tracers.cpp - the tracers' native surface: enable(), disable(), write_mark(), active_mode(),
// the path of the instrumented trace being written, and _run_as_main (the launcher's
// target, python/main_context.h). Only one mode is active at a time.
#include <cstring>
#include <string>
#include <string_view>

#include "bindings/bindings.h"
#include "python/instrument_api.h"
#include "python/main_context.h"

namespace etwtrace::py::bindings {

TracerMode* mode_by_name(const char* name) {
    if (std::strcmp(name, "stack") == 0) {
        return &stack_mode();
    }
    if (std::strcmp(name, "instrumented") == 0 || std::strcmp(name, "instrument") == 0) {
        return &instrument_mode();
    }
    if (std::strcmp(name, "sampler") == 0) {
        return &sampler_mode();
    }
    PyErr_Format(PyExc_ValueError, "'%s' is not a tracing mode; use 'stack', 'instrumented' or 'sampler'", name);
    return nullptr;
}

namespace {

TracerMode* active_mode = nullptr;

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
    if (active_mode && !active_mode->write_mark(std::string_view(text, static_cast<size_t>(length)),
                                                static_cast<MarkKind>(kind))) {
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

PyObject* py_instrumented_trace_path(PyObject*, PyObject*) {
    std::string path = instrument_trace_path();
    if (path.empty()) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size()));
}

PyObject* py_run_as_main(PyObject*, PyObject* args) {
    PyObject *target = nullptr, *arg = nullptr;
    if (!PyArg_ParseTuple(args, "OO:_run_as_main", &target, &arg)) {
        return nullptr;
    }
    return run_as_main(target, arg);
}

PyObject* py_sampler_trace_path(PyObject*, PyObject*) {
    std::string path = sampler_trace_path();
    if (path.empty()) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size()));
}

}  // namespace

PyMethodDef tracer_methods[] = {
    {"enable", py_enable, METH_VARARGS,
     "enable(mode, ignored_files, include_prefixes, options={})\n\nStart tracing in 'stack', "
     "'instrumented' or 'sampler' mode. Only one tracer may be active at a time. options: 'exclude_prefixes' "
     "(list of str: functions whose file starts with one of them are never traced), "
     "'trace_path' (instrumented, sampler: the trace file to write); sampler: 'rate' (per second), "
     "'clock' ('cpu' or 'wall'), 'source' ('auto', 'perf' or 'timer'), 'signal' (a real-time signal)."},
    {"disable", py_disable, METH_NOARGS, "disable()\n\nStop the active tracer (no-op if none)."},
    {"write_mark", py_write_mark, METH_VARARGS,
     "write_mark(text, kind)\n\nEmit a PythonMark (kind 0), range start (1) or stop (2), or a "
     "PythonStackSample (3) through the active tracer."},
    {"active_mode", py_active_mode, METH_NOARGS, "active_mode()\n\nName of the active mode, or None."},
    {"_instrumented_trace_path", py_instrumented_trace_path, METH_NOARGS,
     "_instrumented_trace_path()\n\nPath of the trace file being written, or None."},
    {"_run_as_main", py_run_as_main, METH_VARARGS,
     "_run_as_main(code, globals) or _run_as_main(callable, args)\n\nRuns the launcher's target with no "
     "launcher frame under it and a fresh recursion depth (python/main_context.h); returns None, or "
     "the exception it raised."},
    {"_sampler_trace_path", py_sampler_trace_path, METH_NOARGS,
     "_sampler_trace_path()\n\nPath of the trace file the sampler is writing, or None."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace etwtrace::py::bindings
