// module.cpp - the native module etwtrace._etwtrace: its definition, its initialisation from
// the parts listed in bindings.h, and _get_technical_info (what --info prints).
#include <string_view>

#include "bindings/bindings.h"

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

namespace etwtrace::py::bindings {
namespace {

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
    {"_get_technical_info", py_technical_info, METH_VARARGS,
     "_get_technical_info(mode='stack')\n\nA tuple describing the native module, for bug reports."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "etwtrace._etwtrace",
    "Native core of etwtrace: eval-frame and call hooks, thunks, symbol files, trace files.", -1,
    module_methods, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace
}  // namespace etwtrace::py::bindings

PyMODINIT_FUNC PyInit__etwtrace() {
    using namespace etwtrace::py::bindings;
    PyObject* module = PyModule_Create(&module_def);
    for (PyMethodDef* part : {tracer_methods, trace_data_methods, bench_floor_methods}) {
        if (module && PyModule_AddFunctions(module, part) < 0) {
            Py_CLEAR(module);
        }
    }
    if (module && add_trace_event_types(module) < 0) {
        Py_CLEAR(module);
    }
    return module;
}
