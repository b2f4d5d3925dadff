// bindings.cpp - the whole Python-visible surface of the native module etwtrace._etwtrace.
//
// Plain CPython C API (no binding library): the surface is a handful of functions, the hot
// paths live in the hooks and never cross this file, and the module then builds against any
// CPython 3.9+ with nothing but the interpreter's own headers.
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "python/compat.h"
#include "python/stack_mode.h"  // _bench_noop_hook (benchmarks/bench_stack.py)
#include "python/tracer_mode.h"
#include "python/instrument_api.h"  // issue #5 section
#include "reader/trace_reader.h"       // issue #5 section

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


// ==== instrumented mode and trace reader (issue #5) ==========================================
// Everything etwtrace._reader and benchmarks/bench_instrumented.py need from the native side.
// A decoded trace lives in a capsule; Python pulls events from it in batches.

PyObject* py_instrumented_trace_path(PyObject*, PyObject*) {
    std::string path = instrument_trace_path();
    if (path.empty()) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size()));
}

PyObject* py_bench_noop_profile(PyObject*, PyObject* arg) {
    int enable = PyObject_IsTrue(arg);
    if (enable < 0 || !bench_noop_profile(enable != 0)) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* py_bench_noop_monitoring(PyObject*, PyObject* args) {
    int enable = 0, c_events = 1, py_events = 1;
    if (!PyArg_ParseTuple(args, "p|pp:_bench_noop_monitoring", &enable, &c_events, &py_events) ||
        !bench_noop_monitoring(enable != 0, c_events != 0, py_events != 0)) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

constexpr const char* kTraceCapsule = "etwtrace._etwtrace.TraceData";

void trace_capsule_free(PyObject* capsule) {
    delete static_cast<reader::TraceData*>(PyCapsule_GetPointer(capsule, kTraceCapsule));
}

reader::TraceData* trace_from(PyObject* capsule) {
    return static_cast<reader::TraceData*>(PyCapsule_GetPointer(capsule, kTraceCapsule));
}

PyObject* py_read_trace(PyObject*, PyObject* args) {
    PyObject* path_bytes = nullptr;
    if (!PyArg_ParseTuple(args, "O&:_read_trace", PyUnicode_FSConverter, &path_bytes)) {
        return nullptr;
    }
    std::string path(PyBytes_AS_STRING(path_bytes), static_cast<size_t>(PyBytes_GET_SIZE(path_bytes)));
    Py_DECREF(path_bytes);
    auto data = std::make_unique<reader::TraceData>();
    bool ok = false;
    Py_BEGIN_ALLOW_THREADS
    ok = reader::read_file(path, *data);
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "etwtrace: cannot read trace %s: %s", path.c_str(), data->error.c_str());
        return nullptr;
    }
    PyObject* capsule = PyCapsule_New(data.get(), kTraceCapsule, trace_capsule_free);
    if (capsule) {
        data.release();
    }
    return capsule;
}

PyObject* py_trace_info(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    const auto& h = t->header;
    return Py_BuildValue(
        "{sisisisisKsKsssKsKsKsKsNsNss#sn}", "version_major", h.version_major, "version_minor", h.version_minor,
        "pid", static_cast<int>(h.pid), "parent_pid", static_cast<int>(h.parent_pid), "start_ns",
        static_cast<unsigned long long>(h.start_ns), "start_realtime_ns",
        static_cast<unsigned long long>(h.start_realtime_ns), "clock", "CLOCK_MONOTONIC", "lost_events",
        static_cast<unsigned long long>(t->lost_events), "unmatched_pops",
        static_cast<unsigned long long>(t->unmatched_pops), "sequence_gaps",
        static_cast<unsigned long long>(t->sequence_gaps), "chunks", static_cast<unsigned long long>(t->chunks),
        "complete", PyBool_FromLong(t->complete), "truncated", PyBool_FromLong(t->truncated), "error",
        t->error.data(), static_cast<Py_ssize_t>(t->error.size()), "events",
        static_cast<Py_ssize_t>(t->events.size()));
}

PyObject* py_trace_python_version(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    return PyUnicode_DecodeUTF8(t->python_version.data(), static_cast<Py_ssize_t>(t->python_version.size()),
                                "replace");
}

PyObject* utf8_or_replace(const std::string& s) {
    return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
}

// (id, name, source_file, line, is_python, begin, end) per function, in file order.
PyObject* py_trace_functions(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(t->functions.size()));
    for (size_t i = 0; list && i < t->functions.size(); ++i) {
        const reader::Function& f = t->functions[i];
        PyObject* item = Py_BuildValue("(INNiNKK)", f.id, utf8_or_replace(f.name), utf8_or_replace(f.source_file),
                                       f.line, PyBool_FromLong(f.is_python), static_cast<unsigned long long>(f.begin),
                                       static_cast<unsigned long long>(f.end));
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
    }
    return list;
}

// Events [start, start+count) as tuples (kind, timestamp, thread_id, function_id, caller,
// caller_line, mark_kind, detail, stack_node): detail is the mark text (marks), the function's
// index in _trace_functions (definitions) or None.
PyObject* py_trace_events(PyObject*, PyObject* args) {
    PyObject* capsule = nullptr;
    Py_ssize_t start = 0, count = 0;
    if (!PyArg_ParseTuple(args, "Onn:_trace_events", &capsule, &start, &count)) {
        return nullptr;
    }
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    Py_ssize_t total = static_cast<Py_ssize_t>(t->events.size());
    start = start < 0 ? 0 : (start > total ? total : start);
    Py_ssize_t end = count < 0 || start + count > total ? total : start + count;
    PyObject* list = PyList_New(end - start);
    for (Py_ssize_t i = start; list && i < end; ++i) {
        const reader::Event& e = t->events[static_cast<size_t>(i)];
        PyObject* detail = nullptr;
        if (e.kind == reader::Kind::Mark) {
            detail = utf8_or_replace(t->marks[e.aux]);
        } else if (e.kind == reader::Kind::Function) {
            detail = PyLong_FromUnsignedLong(e.aux);
        } else {
            detail = (Py_INCREF(Py_None), Py_None);
        }
        PyObject* node = e.stack == reader::kNoNode ? (Py_INCREF(Py_None), Py_None) : PyLong_FromUnsignedLong(e.stack);
        PyObject* item = Py_BuildValue("(iKKIIiiNN)", static_cast<int>(e.kind),
                                       static_cast<unsigned long long>(e.timestamp),
                                       static_cast<unsigned long long>(t->thread_ids[e.thread]), e.function_id,
                                       e.caller, e.caller_line, static_cast<int>(e.mark_kind), detail, node);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i - start, item);
    }
    return list;
}

// The stack at a node as a tuple of FunctionIDs, leaf first.
PyObject* py_trace_stack(PyObject*, PyObject* args) {
    PyObject* capsule = nullptr;
    unsigned long node = 0;
    if (!PyArg_ParseTuple(args, "Ok:_trace_stack", &capsule, &node)) {
        return nullptr;
    }
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    std::vector<uint32_t> ids = t->stack(static_cast<uint32_t>(node));
    PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(ids.size()));
    for (size_t i = 0; tuple && i < ids.size(); ++i) {
        PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), PyLong_FromUnsignedLong(ids[i]));
    }
    return tuple;
}

// Decodes a file `repeat` times without sorting: (events, best seconds). Benchmarks only.
PyObject* py_trace_decode_rate(PyObject*, PyObject* args) {
    PyObject* path_bytes = nullptr;
    int repeat = 3;
    if (!PyArg_ParseTuple(args, "O&|i:_trace_decode_rate", PyUnicode_FSConverter, &path_bytes, &repeat)) {
        return nullptr;
    }
    std::string path(PyBytes_AS_STRING(path_bytes), static_cast<size_t>(PyBytes_GET_SIZE(path_bytes)));
    Py_DECREF(path_bytes);
    double best = 0;
    size_t events = 0;
    for (int i = 0; i < repeat; ++i) {
        reader::TraceData data;
        reader::ReadOptions options;
        options.sort = false;
        auto t0 = std::chrono::steady_clock::now();
        if (!reader::read_file(path, data, options)) {
            PyErr_Format(PyExc_ValueError, "etwtrace: cannot read trace: %s", data.error.c_str());
            return nullptr;
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = (i == 0 || s < best) ? s : best;
        events = data.events.size();
    }
    return Py_BuildValue("(nd)", static_cast<Py_ssize_t>(events), best);
}

#define ETWTRACE_INSTRUMENTED_METHODS                                                                       \
    {"_instrumented_trace_path", py_instrumented_trace_path, METH_NOARGS,                                   \
     "_instrumented_trace_path()\n\nPath of the trace file being written, or None."},                       \
    {"_bench_noop_profile", py_bench_noop_profile, METH_O,                                                  \
     "_bench_noop_profile(enable)\n\nInstall/remove a no-op C profile function (benchmark floor)."},        \
    {"_bench_noop_monitoring", py_bench_noop_monitoring, METH_VARARGS,                                      \
     "_bench_noop_monitoring(enable, c_events=True, py_events=True)\n\nNo-op sys.monitoring callbacks (floor)."},   \
    {"_read_trace", py_read_trace, METH_VARARGS, "_read_trace(path)\n\nDecode a trace file (a capsule)."}, \
    {"_trace_info", py_trace_info, METH_O, "_trace_info(trace)\n\nHeader and integrity counters."},        \
    {"_trace_python_version", py_trace_python_version, METH_O, "_trace_python_version(trace)"},            \
    {"_trace_functions", py_trace_functions, METH_O, "_trace_functions(trace)\n\nFunction definitions."},  \
    {"_trace_events", py_trace_events, METH_VARARGS, "_trace_events(trace, start, count)\n\nEvent tuples."}, \
    {"_trace_stack", py_trace_stack, METH_VARARGS, "_trace_stack(trace, node)\n\nFunctionIDs, leaf first."}, \
    {"_trace_decode_rate", py_trace_decode_rate, METH_VARARGS,                                              \
     "_trace_decode_rate(path, repeat=3)\n\n(events, seconds) of the C++ decoder (benchmark)."},

// ==== end of instrumented mode and trace reader ==============================================

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
    ETWTRACE_INSTRUMENTED_METHODS  // issue #5 section above
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
