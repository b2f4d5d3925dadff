// trace_data.cpp - trace files (docs/trace-format.md) for etwtrace's readers and reports.
//
// _read_trace decodes a whole file (reader/trace_reader.h) into a capsule, and the _trace_*
// functions pull from it: the header and integrity counters, functions, events in batches,
// stacks. That is the reference decode (tests compare etwtrace.read()'s stream with it);
// readers use trace_events.cpp. _trace_aggregate summarises a file without keeping its events
// (reports); _trace_decode_rate times the decoder (benchmarks).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "reader/trace_aggregate.h"
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
        PyErr_Format(PyExc_ValueError, "cannot read the trace file %s: %s", path.c_str(), data->error.c_str());
        return nullptr;
    }
    PyObject* capsule = PyCapsule_New(data.get(), kTraceCapsule, trace_capsule_free);
    if (capsule) {
        data.release();
    }
    return capsule;
}

}  // namespace

PyObject* trace_info_dict(const reader::TraceSummary& t, size_t events) {
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

PyObject* sampler_stats_dict(const reader::SamplerStats& s, uint64_t unknown_nodes) {
    if (!s.present) {
        Py_RETURN_NONE;
    }
    static const char* sources[] = {"task-clock", "timer-cpu-clock", "timer-wall-clock"};
    using ull = unsigned long long;
    return Py_BuildValue("{sKsKsKsKsKsKsssKsK}", "unmerged", static_cast<ull>(s.unmerged), "samples",
                         static_cast<ull>(s.samples), "dropped", static_cast<ull>(s.dropped), "unresolved_frames",
                         static_cast<ull>(s.unresolved_frames), "truncated", static_cast<ull>(s.truncated),
                         "period_ns", static_cast<ull>(s.period_ns), "source",
                         s.source < 3 ? sources[s.source] : "unknown", "threads", static_cast<ull>(s.threads),
                         "unknown_nodes", static_cast<ull>(unknown_nodes));
}

namespace {

PyObject* py_trace_info(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    return trace_info_dict(*t, t->events.size());
}

PyObject* py_trace_python_version(PyObject*, PyObject* capsule) {
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    return PyUnicode_DecodeUTF8(t->python_version.data(), static_cast<Py_ssize_t>(t->python_version.size()),
                                "replace");
}

}  // namespace

PyObject* text_from_file(std::string_view s) {
    return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
}

PyObject* function_list(const std::vector<reader::Function>& functions) {
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(functions.size()));
    for (size_t i = 0; list && i < functions.size(); ++i) {
        const reader::Function& f = functions[i];
        PyObject* item = Py_BuildValue("(INNiNKK)", f.id, text_from_file(f.name), text_from_file(f.source_file),
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

namespace {

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
            detail = text_from_file(t->marks[e.aux]);
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

// ---- the sampler's samples -----------------------------------------------------------------

// The stack of a sample node as a tuple of (is_native, id, line), leaf first: id is a
// FunctionID (Python frames, line = the line running) or a NativeSymbol id (_trace_symbols).
PyObject* py_trace_sample_stack(PyObject*, PyObject* args) {
    PyObject* capsule = nullptr;
    unsigned long node = 0;
    if (!PyArg_ParseTuple(args, "Ok:_trace_sample_stack", &capsule, &node)) {
        return nullptr;
    }
    reader::TraceData* t = trace_from(capsule);
    if (!t) {
        return nullptr;
    }
    std::vector<const reader::SampleNode*> path;
    for (uint32_t n = static_cast<uint32_t>(node); n != reader::kNoNode && n < t->samples.nodes.size();
         n = t->samples.nodes[n].parent) {
        path.push_back(&t->samples.nodes[n]);
    }
    PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(path.size()));
    for (size_t i = 0; tuple && i < path.size(); ++i) {
        PyObject* item = Py_BuildValue("(NIi)", PyBool_FromLong(path[i]->frame & 1), path[i]->frame >> 1, path[i]->line);
        if (!item) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), item);
    }
    return tuple;
}

// ---- _trace_aggregate -------------------------------------------------------------------------
// _trace_aggregate(path, spans=None) -> dict, the whole trace summarised without keeping its
// events (reader/trace_aggregate.h); spans [(start_ns, end_ns)] clip it to those windows:
//   "info":            the dict _trace_info gives ("events" = events decoded), plus
//                      "open_frames": calls still open at the end, closed at last_ns
//   "python_version":  str
//   "threads":         [thread_id, ...] native thread ids, in order of first appearance
//   "functions":       [(id, name, source_file, line, is_python, begin, end), ...] as _trace_functions
//   "nodes":           [(parent, function_id), ...] the call tree: one node per distinct stack
//                      per thread; parent is a node index (always smaller) or None for a root
//   "stacks":          [(thread_id, node, calls, self_ns, inclusive_ns), ...] one per node, in
//                      node order: calls whose stack was exactly that node's, their exclusive
//                      and inclusive time
//   "function_totals": [(function_id, calls, inclusive_ns, exclusive_ns), ...] by id; inclusive
//                      counts recursion once (time under the outermost active call per thread)
//   "marks":           [(timestamp, thread_id, kind, text), ...] kind 0 mark, 1 range start,
//                      2 range stop, 3 stack sample
//   "first_ns", "last_ns": earliest and latest event timestamp (None without events)
// Times are CLOCK_MONOTONIC ns, exactly as _read_trace's events would give them.

template <typename T, typename Make>
PyObject* list_of(const std::vector<T>& items, Make make) {
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(items.size()));
    for (size_t i = 0; list && i < items.size(); ++i) {
        PyObject* item = make(items[i]);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
    }
    return list;
}

PyObject* aggregate_dict(const reader::TraceAggregate& a) {
    using ull = unsigned long long;
    PyObject* info = trace_info_dict(a, a.events);
    if (info) {
        PyObject* open = PyLong_FromUnsignedLongLong(a.open_frames);
        if (!open || PyDict_SetItemString(info, "open_frames", open) < 0) {
            Py_CLEAR(info);
        }
        Py_XDECREF(open);
    }
    if (!info) {
        return nullptr;
    }
    const auto tid = [&](uint32_t index) { return static_cast<ull>(a.thread_ids[index]); };
    PyObject* nodes = list_of(a.nodes, [](const reader::AggregateNode& n) {
        PyObject* parent = n.parent == reader::kNoNode ? (Py_INCREF(Py_None), Py_None) : PyLong_FromUnsignedLong(n.parent);
        return Py_BuildValue("(NI)", parent, n.function_id);
    });
    size_t index = 0;
    PyObject* stacks = list_of(a.nodes, [&](const reader::AggregateNode& n) {
        return Py_BuildValue("(KnKKK)", tid(n.thread), static_cast<Py_ssize_t>(index++), static_cast<ull>(n.calls),
                             static_cast<ull>(n.self_ns), static_cast<ull>(n.inclusive_ns));
    });
    PyObject* totals = list_of(a.function_totals, [](const std::pair<uint32_t, reader::FunctionTotals>& f) {
        return Py_BuildValue("(IKKK)", f.first, static_cast<ull>(f.second.calls), static_cast<ull>(f.second.inclusive_ns),
                             static_cast<ull>(f.second.exclusive_ns));
    });
    PyObject* marks = list_of(a.marks, [&](const reader::AggregateMark& m) {
        return Py_BuildValue("(KKiN)", static_cast<ull>(m.timestamp), tid(m.thread), static_cast<int>(m.kind),
                             text_from_file(m.text));
    });
    PyObject* threads = list_of(a.thread_ids, [](uint64_t t) { return PyLong_FromUnsignedLongLong(t); });
    PyObject* first = a.events ? PyLong_FromUnsignedLongLong(a.first_ns) : (Py_INCREF(Py_None), Py_None);
    PyObject* last = a.events ? PyLong_FromUnsignedLongLong(a.last_ns) : (Py_INCREF(Py_None), Py_None);
    PyObject* version = PyUnicode_DecodeUTF8(a.python_version.data(), static_cast<Py_ssize_t>(a.python_version.size()),
                                             "replace");
    PyObject* functions = function_list(a.functions);
    if (!nodes || !stacks || !totals || !marks || !threads || !first || !last || !version || !functions) {
        for (PyObject* o : {info, nodes, stacks, totals, marks, threads, first, last, version, functions}) {
            Py_XDECREF(o);
        }
        return nullptr;
    }
    return Py_BuildValue("{sNsNsNsNsNsNsNsNsNsNsK}", "info", info, "python_version", version, "threads", threads,
                         "functions", functions, "nodes", nodes, "stacks", stacks, "function_totals", totals,
                         "marks", marks, "first_ns", first, "last_ns", last, "samples", static_cast<ull>(a.samples));
}

PyObject* py_trace_aggregate(PyObject*, PyObject* args) {
    PyObject* path_bytes = nullptr;
    PyObject* spans_arg = Py_None;
    if (!PyArg_ParseTuple(args, "O&|O:_trace_aggregate", PyUnicode_FSConverter, &path_bytes, &spans_arg)) {
        return nullptr;
    }
    std::string path(PyBytes_AS_STRING(path_bytes), static_cast<size_t>(PyBytes_GET_SIZE(path_bytes)));
    Py_DECREF(path_bytes);
    std::vector<reader::TimeSpan> spans;
    if (spans_arg != Py_None) {
        PyObject* seq = PySequence_Fast(spans_arg, "spans must be a sequence of (start_ns, end_ns)");
        if (!seq) {
            return nullptr;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
            unsigned long long start = 0, end = 0;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "KK:span", &start, &end)) {
                Py_DECREF(seq);
                return nullptr;
            }
            spans.push_back(reader::TimeSpan{start, end});
        }
        Py_DECREF(seq);
    }
    auto data = std::make_unique<reader::TraceAggregate>();
    bool ok = false;
    Py_BEGIN_ALLOW_THREADS
    ok = reader::aggregate_file(path, *data, spans_arg != Py_None ? &spans : nullptr);
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "cannot read the trace file %s: %s", path.c_str(), data->error.c_str());
        return nullptr;
    }
    return aggregate_dict(*data);
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
    {"_trace_sample_stack", py_trace_sample_stack, METH_VARARGS,
     "_trace_sample_stack(trace, node)\n\n(is_native, id, line) per frame of a sample, leaf first."},
    {"_trace_aggregate", py_trace_aggregate, METH_VARARGS,
     "_trace_aggregate(path, spans=None)\n\nSummarise a trace file without keeping its events (clipped to "
     "spans [(start_ns, end_ns)] if given): a dict with 'info', "
     "'python_version', 'threads', 'functions', 'nodes' [(parent, function_id)], 'stacks' [(thread_id, node, "
     "calls, self_ns, inclusive_ns)], 'function_totals' [(function_id, calls, inclusive_ns, exclusive_ns)], "
     "'marks' [(timestamp, thread_id, kind, text)], 'first_ns', 'last_ns'."},
    {"_trace_decode_rate", py_trace_decode_rate, METH_VARARGS,
     "_trace_decode_rate(path, repeat=3)\n\n(events, seconds) of the C++ decoder (benchmark)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace etwtrace::py::bindings
