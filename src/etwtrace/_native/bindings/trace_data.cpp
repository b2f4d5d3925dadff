// trace_data.cpp - trace files (docs/trace-format.md) for etwtrace's readers and reports.
//
// _read_trace decodes a whole file (reader/trace_reader.h) into a capsule, and the _trace_*
// functions pull from it: the header and integrity counters, functions, events in batches,
// stacks. _trace_decode_rate times the decoder (benchmarks).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "reader/trace_reader.h"

namespace etwtrace::py::bindings {
namespace {

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

// The header and integrity counters of a decode, as _trace_info and _trace_aggregate give them.
template <typename Decoded>
PyObject* info_dict(const Decoded& t, size_t events) {
    const auto& h = t.header;
    return Py_BuildValue(
        "{sisisisisKsKsssKsKsKsKsNsNss#sn}", "version_major", h.version_major, "version_minor", h.version_minor,
        "pid", static_cast<int>(h.pid), "parent_pid", static_cast<int>(h.parent_pid), "start_ns",
        static_cast<unsigned long long>(h.start_ns), "start_realtime_ns",
        static_cast<unsigned long long>(h.start_realtime_ns), "clock", "CLOCK_MONOTONIC", "lost_events",
        static_cast<unsigned long long>(t.lost_events), "unmatched_pops",
        static_cast<unsigned long long>(t.unmatched_pops), "sequence_gaps",
        static_cast<unsigned long long>(t.sequence_gaps), "chunks", static_cast<unsigned long long>(t.chunks),
        "complete", PyBool_FromLong(t.complete), "truncated", PyBool_FromLong(t.truncated), "error",
        t.error.data(), static_cast<Py_ssize_t>(t.error.size()), "events", static_cast<Py_ssize_t>(events));
}

PyObject* py_trace_info(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    return info_dict(*t, t->events.size());
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
PyObject* function_list(const std::vector<reader::Function>& functions) {
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(functions.size()));
    for (size_t i = 0; list && i < functions.size(); ++i) {
        const reader::Function& f = functions[i];
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

PyObject* py_trace_functions(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    return function_list(t->functions);
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

}  // namespace

PyMethodDef trace_data_methods[] = {
    {"_read_trace", py_read_trace, METH_VARARGS, "_read_trace(path)\n\nDecode a trace file (a capsule)."},
    {"_trace_info", py_trace_info, METH_O, "_trace_info(trace)\n\nHeader and integrity counters."},
    {"_trace_python_version", py_trace_python_version, METH_O, "_trace_python_version(trace)"},
    {"_trace_functions", py_trace_functions, METH_O, "_trace_functions(trace)\n\nFunction definitions."},
    {"_trace_events", py_trace_events, METH_VARARGS, "_trace_events(trace, start, count)\n\nEvent tuples."},
    {"_trace_stack", py_trace_stack, METH_VARARGS, "_trace_stack(trace, node)\n\nFunctionIDs, leaf first."},
    {"_trace_decode_rate", py_trace_decode_rate, METH_VARARGS,
     "_trace_decode_rate(path, repeat=3)\n\n(events, seconds) of the C++ decoder (benchmark)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace etwtrace::py::bindings
