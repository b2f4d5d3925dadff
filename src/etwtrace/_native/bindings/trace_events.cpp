// trace_events.cpp - trace files as etwtrace.read() streams them (reader/trace_stream.h).
//
//   TraceReader(path)    indexes a file (pass 1, without the GIL): info(), python_version(),
//                        functions(), then
//     .events(event_type, frame, thread_ids=None, names=None)
//                        an iterator of event_type instances (etwtrace._read.Event) in
//                        timestamp order, those of other threads / names skipped here;
//     .stacks_at(frame, queries)
//                        for [(thread_id, timestamp)] in time order: the stack of each thread
//                        just before each instant (perf samples' python_stack).
//   EventBase            the storage of etwtrace._read.Event (which adds its methods): name,
//                        pid, thread_id, timestamp, opcode, cpu, source and python_stack are
//                        plain attributes; `fields` and `stack` of a streamed event are built
//                        when first read, from the raw values it keeps.
//
// The cost per event is one object: pid, thread ids, names and opcodes are shared objects, and
// a stack is one tuple per distinct stack (interned nodes, reader/wire.h: NodeTable), built
// from one Frame per function (`frame(function_id)`, called once per function).
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bindings/bindings.h"
#include "reader/trace_stream.h"

#include <structmember.h>  // after Python.h (bindings.h), which it needs

namespace etwtrace::py::bindings {
namespace {

using reader::Kind;

// ---- shared strings ------------------------------------------------------------------------

enum NameIndex { kPush, kPop, kFunction, kMark, kStackSample, kThread, kNames };
const char* const kNameText[kNames] = {"PythonFunctionPush", "PythonFunctionPop", "PythonFunction",
                                       "PythonMark",         "PythonStackSample", "PythonThread"};
PyObject* g_names[kNames];
PyObject* g_info;
PyObject* g_start;
PyObject* g_stop;
PyObject* g_trace;     // "trace", the source
PyObject* g_minus_one;
PyObject* g_empty;     // ()
// Field names, in upstream's order.
PyObject *g_function_id, *g_caller, *g_caller_line, *g_mark, *g_thread_id, *g_begin, *g_end, *g_line, *g_file,
    *g_name, *g_is_python;

bool intern_strings() {
    for (int i = 0; i < kNames; ++i) {
        if (!(g_names[i] = PyUnicode_InternFromString(kNameText[i]))) {
            return false;
        }
    }
    struct {
        PyObject** slot;
        const char* text;
    } strings[] = {{&g_info, "Info"},          {&g_start, "Start"},           {&g_stop, "Stop"},
                   {&g_trace, "trace"},        {&g_function_id, "FunctionID"}, {&g_caller, "Caller"},
                   {&g_caller_line, "CallerLine"}, {&g_mark, "Mark"},         {&g_thread_id, "ThreadId"},
                   {&g_begin, "BeginAddress"}, {&g_end, "EndAddress"},        {&g_line, "LineNumber"},
                   {&g_file, "SourceFile"},    {&g_name, "Name"},             {&g_is_python, "IsPythonCode"}};
    for (auto& s : strings) {
        if (!(*s.slot = PyUnicode_InternFromString(s.text))) {
            return false;
        }
    }
    return (g_minus_one = PyLong_FromLong(-1)) && (g_empty = PyTuple_New(0));
}

PyObject* new_ref(PyObject* o) {
    Py_INCREF(o);
    return o;
}

// ---- stacks as tuples of Frames ------------------------------------------------------------

// One tuple per node, leaf first, sharing one Frame per FunctionID. Tuples are cached up to a
// budget of frame references (deep, ever-changing stacks would otherwise grow it without end);
// beyond it they are built each time they are asked for.
class StackTuples {
public:
    explicit StackTuples(PyObject* frame) : frame_(new_ref(frame)) {}
    ~StackTuples() {
        for (PyObject* t : tuples_) {
            Py_XDECREF(t);
        }
        for (auto& [id, f] : frames_) {
            Py_DECREF(f);
        }
        Py_DECREF(frame_);
    }

    // New reference, or nullptr with an exception set.
    PyObject* get(const reader::TraceStream& stream, uint32_t node) {
        if (node == reader::kNoNode) {
            return new_ref(g_empty);
        }
        if (node < tuples_.size() && tuples_[node]) {
            return new_ref(tuples_[node]);
        }
        // The nodes up to the first one with a tuple, leaf first.
        std::vector<uint32_t> chain;
        uint32_t n = node;
        while (n != reader::kNoNode && !(n < tuples_.size() && tuples_[n]) && chain.size() <= stream.node_count()) {
            chain.push_back(n);
            n = stream.parent(n);
        }
        PyObject* base = n == reader::kNoNode ? g_empty : tuples_[n];
        const Py_ssize_t base_size = PyTuple_GET_SIZE(base);
        const bool cache = cached_ + chain.size() * (static_cast<size_t>(base_size) + chain.size()) <= kBudget;
        if (!cache) {
            PyObject* tuple = PyTuple_New(base_size + static_cast<Py_ssize_t>(chain.size()));
            for (size_t i = 0; tuple && i < chain.size(); ++i) {
                PyObject* f = frame(stream.function_id(chain[i]));
                if (!f) {
                    Py_CLEAR(tuple);
                    break;
                }
                PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), new_ref(f));
            }
            for (Py_ssize_t i = 0; tuple && i < base_size; ++i) {
                PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(chain.size()) + i, new_ref(PyTuple_GET_ITEM(base, i)));
            }
            return tuple;
        }
        if (tuples_.size() < stream.node_count()) {
            tuples_.resize(stream.node_count(), nullptr);
        }
        for (size_t k = chain.size(); k-- > 0;) {  // root side first: each tuple extends its parent's
            PyObject* f = frame(stream.function_id(chain[k]));
            if (!f) {
                return nullptr;
            }
            const Py_ssize_t size = PyTuple_GET_SIZE(base);
            PyObject* tuple = PyTuple_New(size + 1);
            if (!tuple) {
                return nullptr;
            }
            PyTuple_SET_ITEM(tuple, 0, new_ref(f));
            for (Py_ssize_t i = 0; i < size; ++i) {
                PyTuple_SET_ITEM(tuple, i + 1, new_ref(PyTuple_GET_ITEM(base, i)));
            }
            tuples_[chain[k]] = tuple;
            cached_ += static_cast<size_t>(size) + 1;
            base = tuple;
        }
        return new_ref(base);
    }

private:
    static constexpr size_t kBudget = size_t{1} << 21;  // frame references (16 MiB)

    // Borrowed (the cache keeps it), or nullptr with an exception set.
    PyObject* frame(uint32_t function_id) {
        auto it = frames_.find(function_id);
        if (it != frames_.end()) {
            return it->second;
        }
        PyObject* f = PyObject_CallFunction(frame_, "I", function_id);
        if (f) {
            frames_.emplace(function_id, f);
        }
        return f;
    }

    PyObject* frame_;
    std::unordered_map<uint32_t, PyObject*> frames_;
    std::vector<PyObject*> tuples_;
    size_t cached_ = 0;
};

// ---- the iterator ----------------------------------------------------------------------------

struct EventsState {
    reader::TraceStream stream;
    StackTuples stacks;
    PyObject* pid;
    std::vector<PyObject*> thread_objects;  // per thread index
    std::unordered_set<uint64_t> thread_ids;
    bool all_threads = true;
    unsigned names = (1u << kNames) - 1;  // bit per NameIndex

    EventsState(std::shared_ptr<const reader::TraceIndex> index, PyObject* frame)
        : stream(std::move(index)), stacks(frame), pid(PyLong_FromUnsignedLong(stream.index().header.pid)) {}
    ~EventsState() {
        Py_XDECREF(pid);
        for (PyObject* t : thread_objects) {
            Py_XDECREF(t);
        }
    }
};

struct TraceEventsObject {
    PyObject_HEAD
    EventsState* state;
    PyTypeObject* event_type;
};

struct EventObject {
    PyObject_HEAD
    PyObject* name;
    PyObject* pid;
    PyObject* thread_id;
    PyObject* timestamp;
    PyObject* opcode;
    PyObject* cpu;
    PyObject* source;
    PyObject* python_stack;
    PyObject* fields;  // nullptr: built from the raw values below when first read
    PyObject* stack;   // nullptr: built by `owner` from `node` when first read
    PyObject* owner;   // the TraceEvents iterator of a streamed event
    PyObject* detail;  // a mark's text
    uint32_t function_id;
    uint32_t caller;
    int32_t caller_line;
    uint32_t function;  // a definition's index in the index's functions
    uint32_t node;
    uint8_t kind;       // reader::Kind of a streamed event, 0 for one made in Python
};

PyTypeObject TraceEventsType = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyTypeObject EventBaseType = {PyVarObject_HEAD_INIT(nullptr, 0)};
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
        NameIndex name = kPush;
        switch (e.kind) {
        case Kind::Push: name = kPush; break;
        case Kind::Pop: name = kPop; break;
        case Kind::Function: name = kFunction; break;
        case Kind::Mark: name = e.mark_kind == 3 ? kStackSample : kMark; break;
        case Kind::ThreadStart:
        case Kind::ThreadStop: name = kThread; break;
        }
        if (!(s.names & (1u << name)) ||
            (!s.all_threads && !s.thread_ids.count(s.stream.index().thread_ids[e.thread]))) {
            continue;
        }
        return make_event(self, e, name);
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

// ---- EventBase -----------------------------------------------------------------------------

EventsState* owner_state(EventObject* ev) { return reinterpret_cast<TraceEventsObject*>(ev->owner)->state; }

PyObject* function_fields(const reader::Function& f) {
    PyObject* d = PyDict_New();
    PyObject* values[] = {PyLong_FromUnsignedLong(f.id), PyLong_FromUnsignedLongLong(f.begin),
                          PyLong_FromUnsignedLongLong(f.end), PyLong_FromLong(f.line), text_from_file(f.source_file),
                          text_from_file(f.name), PyBool_FromLong(f.is_python)};
    PyObject* keys[] = {g_function_id, g_begin, g_end, g_line, g_file, g_name, g_is_python};
    for (size_t i = 0; i < 7; ++i) {
        if (d && (!values[i] || PyDict_SetItem(d, keys[i], values[i]) < 0)) {
            Py_CLEAR(d);
        }
        Py_XDECREF(values[i]);
    }
    return d;
}

// The fields of a streamed event, in upstream's order (dump prints them so).
PyObject* build_fields(EventObject* ev) {
    switch (static_cast<Kind>(ev->kind)) {
    case Kind::Push:
        return Py_BuildValue("{OIOIOi}", g_function_id, ev->function_id, g_caller, ev->caller, g_caller_line,
                             ev->caller_line);
    case Kind::Pop:
        return Py_BuildValue("{OI}", g_function_id, ev->function_id);
    case Kind::Function:
        return function_fields(owner_state(ev)->stream.index().functions[ev->function]);
    case Kind::Mark:
        return Py_BuildValue("{OO}", g_mark, ev->detail);
    case Kind::ThreadStart:
    case Kind::ThreadStop:
        return Py_BuildValue("{OO}", g_thread_id, ev->thread_id);
    }
    return PyDict_New();
}

PyObject* event_get_fields(PyObject* op, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    if (!ev->fields && !(ev->fields = ev->owner ? build_fields(ev) : PyDict_New())) {
        return nullptr;
    }
    return new_ref(ev->fields);
}

int event_set_fields(PyObject* op, PyObject* value, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    Py_XINCREF(value);
    Py_XSETREF(ev->fields, value);
    return 0;
}

PyObject* event_get_stack(PyObject* op, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    if (!ev->stack) {
        if (ev->owner) {
            EventsState* s = owner_state(ev);
            ev->stack = s->stacks.get(s->stream, ev->node);
            if (!ev->stack) {
                return nullptr;
            }
        } else {
            ev->stack = new_ref(g_empty);
        }
    }
    return new_ref(ev->stack);
}

int event_set_stack(PyObject* op, PyObject* value, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "an event's stack cannot be deleted");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(ev->stack, value);
    return 0;
}

PyObject* event_get_python_stack(PyObject* op, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    return new_ref(ev->python_stack ? ev->python_stack : Py_None);
}

int event_set_python_stack(PyObject* op, PyObject* value, void*) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    Py_XINCREF(value);
    Py_XSETREF(ev->python_stack, value);
    return 0;
}

int event_traverse(PyObject* op, visitproc visit, void* arg) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    Py_VISIT(ev->name);
    Py_VISIT(ev->pid);
    Py_VISIT(ev->thread_id);
    Py_VISIT(ev->timestamp);
    Py_VISIT(ev->opcode);
    Py_VISIT(ev->cpu);
    Py_VISIT(ev->source);
    Py_VISIT(ev->python_stack);
    Py_VISIT(ev->fields);
    Py_VISIT(ev->stack);
    Py_VISIT(ev->owner);
    Py_VISIT(ev->detail);
    return 0;  // a subclass's type is visited by the subclass's own traverse (subtype_traverse)
}

int event_clear(PyObject* op) {
    auto* ev = reinterpret_cast<EventObject*>(op);
    Py_CLEAR(ev->name);
    Py_CLEAR(ev->pid);
    Py_CLEAR(ev->thread_id);
    Py_CLEAR(ev->timestamp);
    Py_CLEAR(ev->opcode);
    Py_CLEAR(ev->cpu);
    Py_CLEAR(ev->source);
    Py_CLEAR(ev->python_stack);
    Py_CLEAR(ev->fields);
    Py_CLEAR(ev->stack);
    Py_CLEAR(ev->owner);
    Py_CLEAR(ev->detail);
    return 0;
}

void event_dealloc(PyObject* op) {
    PyObject_GC_UnTrack(op);
    event_clear(op);
    Py_TYPE(op)->tp_free(op);
}

PyMemberDef event_members[] = {
    {"name", T_OBJECT_EX, offsetof(EventObject, name), 0, "upstream's event name"},
    {"pid", T_OBJECT_EX, offsetof(EventObject, pid), 0, nullptr},
    {"thread_id", T_OBJECT_EX, offsetof(EventObject, thread_id), 0, "the kernel thread id"},
    {"timestamp", T_OBJECT_EX, offsetof(EventObject, timestamp), 0, "ns, CLOCK_MONOTONIC"},
    {"opcode", T_OBJECT_EX, offsetof(EventObject, opcode), 0, "Info, Start or Stop"},
    {"cpu", T_OBJECT_EX, offsetof(EventObject, cpu), 0, nullptr},
    {"source", T_OBJECT_EX, offsetof(EventObject, source), 0, "trace, perf, probe or jitdump"},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef event_getset[] = {
    {"fields", event_get_fields, event_set_fields, "upstream's fields, a dict", nullptr},
    {"stack", event_get_stack, event_set_stack, "the call stack at this event, leaf first", nullptr},
    {"python_stack", event_get_python_stack, event_set_python_stack,
     "perf samples of an instrumented process: the Python stack at that instant, or None", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

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
    static const char* keywords[] = {"event_type", "frame", "thread_ids", "names", nullptr};
    PyObject *event_type = nullptr, *frame = nullptr, *thread_ids = Py_None, *names = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO:events", const_cast<char**>(keywords), &event_type, &frame,
                                     &thread_ids, &names)) {
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
    self->state = new EventsState(*reinterpret_cast<TraceReaderObject*>(op)->index, frame);
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
    StackTuples stacks(frame);
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
        PyObject* stack = stacks.get(stream, it == thread_index.end() ? reader::kNoNode : stream.top(it->second));
        if (!stack) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, stack);
    }
    Py_DECREF(seq);
    return result;
}

PyMethodDef trace_reader_methods[] = {
    {"info", trace_reader_info, METH_NOARGS, "info()\n\nThe header and integrity counters, a dict."},
    {"python_version", trace_reader_python_version, METH_NOARGS, "python_version()\n\nsys.version of the traced process."},
    {"functions", trace_reader_functions, METH_NOARGS,
     "functions()\n\n[(id, name, source_file, line, is_python, begin, end)], in file order."},
    {"events", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(trace_reader_events)),
     METH_VARARGS | METH_KEYWORDS,
     "events(event_type, frame, thread_ids=None, names=None)\n\nAn iterator of event_type instances in timestamp "
     "order; frame(function_id) makes a stack's Frame (called once per function)."},
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

    EventBaseType.tp_name = "etwtrace._etwtrace.EventBase";
    EventBaseType.tp_basicsize = sizeof(EventObject);
    EventBaseType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
    EventBaseType.tp_doc = "The storage of etwtrace's Event (etwtrace._read.events.Event adds its methods).";
    EventBaseType.tp_new = PyType_GenericNew;
    EventBaseType.tp_dealloc = event_dealloc;
    EventBaseType.tp_traverse = event_traverse;
    EventBaseType.tp_clear = event_clear;
    EventBaseType.tp_members = event_members;
    EventBaseType.tp_getset = event_getset;

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
        if (PyType_Ready(t.type) < 0) {
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
