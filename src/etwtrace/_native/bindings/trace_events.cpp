// trace_events.cpp - trace files as etwtrace.read() streams them (reader/trace_stream.h).
//
//   TraceReader(path)    indexes a file (pass 1, without the GIL): info(), python_version(),
//                        functions(), then
//     .events(event_type, frame, thread_ids=None, names=None)
//                        an iterator of event_type instances (etwtrace._read.Event, whose
//                        storage is event_base.cpp's EventBase) in timestamp order, those of
//                        other threads / names skipped before they are made;
//     .stacks_at(frame, queries)
//                        for [(thread_id, timestamp)] in time order: the stack of each thread
//                        just before each instant (perf samples' python_stack).
//
// The cost per event is one object: pid, thread ids, names and opcodes are shared objects, and
// a stack is one tuple per distinct stack (interned nodes, reader/wire.h: NodeTable), built
// from one Frame per function (`frame(function_id)`, called once per function).
#include "bindings/trace_events.h"

namespace etwtrace::py::bindings {
namespace {

using namespace events;

// ---- the iterator ----------------------------------------------------------------------------

PyTypeObject TraceEventsType = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyTypeObject TraceReaderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* make_event(TraceEventsObject* self, const reader::StreamEvent& e, NameIndex name) {
    EventsState& s = *self->state;
    auto* ev = reinterpret_cast<EventObject*>(self->event_type->tp_alloc(self->event_type, 0));
    if (!ev) {
        return nullptr;
    }
    if (!(ev->timestamp = PyLong_FromUnsignedLongLong(e.timestamp))) {
        Py_DECREF(ev);
        return nullptr;
    }
    ev->name = new_ref(g_names[name]);
    ev->pid = new_ref(s.pid);
    ev->thread_id = new_ref(s.thread_objects[e.thread]);
    ev->cpu = new_ref(g_minus_one);
    ev->source = new_ref(g_trace);
    ev->owner = new_ref(reinterpret_cast<PyObject*>(self));
    ev->kind = static_cast<uint8_t>(e.kind);
    ev->function_id = e.function_id;
    ev->caller = e.caller;
    ev->caller_line = e.caller_line;
    ev->function = e.function;
    ev->node = e.stack;
    ev->flags = e.kind == Kind::Sample ? e.mark_kind : 0;
    ev->sampled = e.kind == Kind::Sample;
    switch (e.kind) {
    case Kind::Mark: {
        static PyObject* const* const opcodes[] = {&g_info, &g_start, &g_stop, &g_info};
        ev->opcode = new_ref(*opcodes[e.mark_kind & 3]);
        if (!(ev->detail = text_from_file(e.text))) {
            Py_DECREF(ev);
            return nullptr;
        }
        break;
    }
    case Kind::ThreadStart:
        ev->opcode = new_ref(g_start);
        break;
    case Kind::ThreadStop:
        ev->opcode = new_ref(g_stop);
        break;
    default:
        ev->opcode = new_ref(g_info);
        break;
    }
    return reinterpret_cast<PyObject*>(ev);
}

PyObject* trace_events_next(PyObject* op) {
    auto* self = reinterpret_cast<TraceEventsObject*>(op);
    EventsState& s = *self->state;
    reader::StreamEvent e;
    while (s.stream.next(e)) {
        uint32_t requested = reader::kNoNode;
        NameIndex name = kPush;
        switch (e.kind) {
        case Kind::Push: name = kPush; break;
        case Kind::Pop: name = kPop; break;
        case Kind::Function: name = kFunction; break;
        case Kind::Mark:
            name = e.mark_kind == 3 ? kStackSample : kMark;
            if (name == kStackSample) {
                std::swap(requested, s.requested[e.thread]);
            }
            break;
        case Kind::ThreadStart:
        case Kind::ThreadStop: name = kThread; break;
        case Kind::Sample:
            if (e.mark_kind & format::kSampleRequested) {
                s.requested[e.thread] = e.stack;  // the stack of the PythonStackSample that follows
                continue;
            }
            name = kSampledProfile;
            break;
        }
        if (!(s.names & (1u << name)) ||
            (!s.all_threads && !s.thread_ids.count(s.stream.index().thread_ids[e.thread]))) {
            continue;
        }
        PyObject* ev = make_event(self, e, name);
        if (ev && requested != reader::kNoNode) {
            auto* o = reinterpret_cast<EventObject*>(ev);
            o->node = requested;
            o->sampled = true;
        }
        return ev;
    }
    if (!s.stream.io_error().empty()) {
        PyErr_Format(PyExc_OSError, "cannot read the trace file further: %s", s.stream.io_error().c_str());
    }
    return nullptr;
}

void trace_events_dealloc(PyObject* op) {
    auto* self = reinterpret_cast<TraceEventsObject*>(op);
    delete self->state;
    Py_XDECREF(self->event_type);
    Py_TYPE(op)->tp_free(op);
}

// ---- TraceReader -----------------------------------------------------------------------------

struct TraceReaderObject {
    PyObject_HEAD
    std::shared_ptr<const reader::TraceIndex>* index;
};

const reader::TraceIndex& index_of(PyObject* op) { return **reinterpret_cast<TraceReaderObject*>(op)->index; }

PyObject* trace_reader_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    static const char* keywords[] = {"path", nullptr};
    PyObject* path_bytes = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&:TraceReader", const_cast<char**>(keywords),
                                     PyUnicode_FSConverter, &path_bytes)) {
        return nullptr;
    }
    std::string path(PyBytes_AS_STRING(path_bytes), static_cast<size_t>(PyBytes_GET_SIZE(path_bytes)));
    Py_DECREF(path_bytes);
    std::string error;
    std::shared_ptr<const reader::TraceIndex> index;
    Py_BEGIN_ALLOW_THREADS
    index = reader::index_file(path, error);
    Py_END_ALLOW_THREADS
    if (!index) {
        PyErr_Format(PyExc_ValueError, "cannot read the trace file %s: %s", path.c_str(), error.c_str());
        return nullptr;
    }
    auto* self = reinterpret_cast<TraceReaderObject*>(type->tp_alloc(type, 0));
    if (self) {
        self->index = new std::shared_ptr<const reader::TraceIndex>(std::move(index));
    }
    return reinterpret_cast<PyObject*>(self);
}

void trace_reader_dealloc(PyObject* op) {
    delete reinterpret_cast<TraceReaderObject*>(op)->index;
    Py_TYPE(op)->tp_free(op);
}

PyObject* trace_reader_info(PyObject* op, PyObject*) {
    const reader::TraceIndex& index = index_of(op);
    return trace_info_dict(index, static_cast<size_t>(index.events));
}

PyObject* trace_reader_python_version(PyObject* op, PyObject*) {
    const std::string& v = index_of(op).python_version;
    return PyUnicode_DecodeUTF8(v.data(), static_cast<Py_ssize_t>(v.size()), "replace");
}

PyObject* trace_reader_functions(PyObject* op, PyObject*) { return function_list(index_of(op).functions); }

PyObject* trace_reader_events(PyObject* op, PyObject* args, PyObject* kwargs) {
    static const char* keywords[] = {"event_type", "frame", "thread_ids", "names", "sample_frame", nullptr};
    PyObject *event_type = nullptr, *frame = nullptr, *thread_ids = Py_None, *names = Py_None, *sample_frame = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO:events", const_cast<char**>(keywords), &event_type, &frame,
                                     &thread_ids, &names, &sample_frame)) {
        return nullptr;
    }
    if (!PyType_Check(event_type) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(event_type), &EventBaseType)) {
        PyErr_SetString(PyExc_TypeError, "event_type must be a subclass of EventBase");
        return nullptr;
    }
    auto* self = PyObject_New(TraceEventsObject, &TraceEventsType);
    if (!self) {
        return nullptr;
    }
    self->state = nullptr;
    self->event_type = reinterpret_cast<PyTypeObject*>(new_ref(event_type));
    self->state = new EventsState(*reinterpret_cast<TraceReaderObject*>(op)->index, frame, sample_frame);
    EventsState& s = *self->state;
    PyObject* result = reinterpret_cast<PyObject*>(self);
    if (!s.pid) {
        Py_DECREF(result);
        return nullptr;
    }
    for (uint64_t tid : s.stream.index().thread_ids) {
        PyObject* t = PyLong_FromUnsignedLongLong(tid);
        if (!t) {
            Py_DECREF(result);
            return nullptr;
        }
        s.thread_objects.push_back(t);
    }
    if (thread_ids != Py_None) {
        s.all_threads = false;
        PyObject* it = PyObject_GetIter(thread_ids);
        PyObject* item = nullptr;
        while (it && (item = PyIter_Next(it))) {
            if (PyLong_Check(item)) {
                unsigned long long v = PyLong_AsUnsignedLongLong(item);
                if (PyErr_Occurred()) {
                    PyErr_Clear();  // a negative id: no thread has it
                } else {
                    s.thread_ids.insert(v);
                }
            }
            Py_DECREF(item);
        }
        Py_XDECREF(it);
        if (PyErr_Occurred()) {
            Py_DECREF(result);
            return nullptr;
        }
    }
    if (names != Py_None) {
        s.names = 0;
        for (int i = 0; i < kNames; ++i) {
            int has = PySequence_Contains(names, g_names[i]);
            if (has < 0) {
                Py_DECREF(result);
                return nullptr;
            }
            s.names |= has ? 1u << i : 0;
        }
    }
    return result;
}

PyObject* trace_reader_stacks_at(PyObject* op, PyObject* args) {
    PyObject *frame = nullptr, *queries = nullptr;
    if (!PyArg_ParseTuple(args, "OO:stacks_at", &frame, &queries)) {
        return nullptr;
    }
    PyObject* seq = PySequence_Fast(queries, "queries must be a sequence of (thread_id, timestamp)");
    if (!seq) {
        return nullptr;
    }
    reader::TraceStream stream(*reinterpret_cast<TraceReaderObject*>(op)->index);
    StackTuples<CallTree> stacks(frame);
    std::unordered_map<uint64_t, uint32_t> thread_index;
    const auto& tids = stream.index().thread_ids;
    for (uint32_t i = 0; i < tids.size(); ++i) {
        thread_index.emplace(tids[i], i);
    }
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject* result = PyList_New(n);
    for (Py_ssize_t i = 0; result && i < n; ++i) {
        unsigned long long tid = 0, ts = 0;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "KK:query", &tid, &ts)) {
            Py_CLEAR(result);
            break;
        }
        stream.skip_before(ts);
        auto it = thread_index.find(tid);
        PyObject* stack = stacks.get(CallTree{stream}, it == thread_index.end() ? reader::kNoNode : stream.top(it->second));
        if (!stack) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, stack);
    }
    Py_DECREF(seq);
    return result;
}

// [(id, is_kernel, address, module, symbol), ...]: the native frames samples name.
PyObject* trace_reader_symbols(PyObject* op, PyObject*) {
    const auto& symbols = index_of(op).samples.symbols;
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(symbols.size()));
    for (size_t i = 0; list && i < symbols.size(); ++i) {
        const reader::NativeSymbol& sym = symbols[i];
        PyObject* item = Py_BuildValue("(INKNN)", sym.id, PyBool_FromLong(sym.kernel),
                                       static_cast<unsigned long long>(sym.address), text_from_file(sym.module),
                                       text_from_file(sym.symbol));
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
    }
    return list;
}

PyObject* trace_reader_sampler_stats(PyObject* op, PyObject*) {
    const reader::TraceIndex& index = index_of(op);
    return sampler_stats_dict(index.sampler, index.samples.unknown_nodes);
}

PyMethodDef trace_reader_methods[] = {
    {"info", trace_reader_info, METH_NOARGS, "info()\n\nThe header and integrity counters, a dict."},
    {"python_version", trace_reader_python_version, METH_NOARGS, "python_version()\n\nsys.version of the traced process."},
    {"functions", trace_reader_functions, METH_NOARGS,
     "functions()\n\n[(id, name, source_file, line, is_python, begin, end)], in file order."},
    {"events", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(trace_reader_events)),
     METH_VARARGS | METH_KEYWORDS,
     "events(event_type, frame, thread_ids=None, names=None, sample_frame=None)\n\nAn iterator of event_type "
     "instances in timestamp order; frame(function_id) makes a stack's Frame (called once per function), "
     "sample_frame(is_native, id, line) a sample's (once per distinct frame)."},
    {"symbols", trace_reader_symbols, METH_NOARGS,
     "symbols()\n\n[(id, is_kernel, address, module, symbol)]: the native frames of samples."},
    {"sampler_stats", trace_reader_sampler_stats, METH_NOARGS,
     "sampler_stats()\n\nThe sampler's counters (a dict), or None when the file has none."},
    {"stacks_at", trace_reader_stacks_at, METH_VARARGS,
     "stacks_at(frame, queries)\n\nFor [(thread_id, timestamp)] in time order: each thread's stack (a tuple of "
     "Frames, leaf first) just before that instant."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_trace_event_types(PyObject* module) {
    if (!intern_strings()) {
        return -1;
    }
    TraceEventsType.tp_name = "etwtrace._etwtrace.TraceEvents";
    TraceEventsType.tp_basicsize = sizeof(TraceEventsObject);
    TraceEventsType.tp_flags = Py_TPFLAGS_DEFAULT;
    TraceEventsType.tp_doc = "The events of a trace file in timestamp order (TraceReader.events()).";
    TraceEventsType.tp_dealloc = trace_events_dealloc;
    TraceEventsType.tp_iter = PyObject_SelfIter;
    TraceEventsType.tp_iternext = trace_events_next;

    if (ready_event_base() < 0) {
        return -1;
    }

    TraceReaderType.tp_name = "etwtrace._etwtrace.TraceReader";
    TraceReaderType.tp_basicsize = sizeof(TraceReaderObject);
    TraceReaderType.tp_flags = Py_TPFLAGS_DEFAULT;
    TraceReaderType.tp_doc = "TraceReader(path)\n\nA trace file, indexed: its counters, functions and events.";
    TraceReaderType.tp_new = trace_reader_new;
    TraceReaderType.tp_dealloc = trace_reader_dealloc;
    TraceReaderType.tp_methods = trace_reader_methods;

    struct {
        PyTypeObject* type;
        const char* name;
    } types[] = {{&TraceEventsType, "TraceEvents"}, {&EventBaseType, "EventBase"}, {&TraceReaderType, "TraceReader"}};
    for (auto& t : types) {
        if (t.type != &EventBaseType && PyType_Ready(t.type) < 0) {
            return -1;
        }
        Py_INCREF(t.type);
        if (PyModule_AddObject(module, t.name, reinterpret_cast<PyObject*>(t.type)) < 0) {
            Py_DECREF(t.type);
            return -1;
        }
    }
    return 0;
}

}  // namespace etwtrace::py::bindings
