// event_base.cpp - EventBase, the storage of etwtrace._read.Event (which adds its methods in
// Python): name, pid, thread_id, timestamp, opcode, cpu and source are plain attributes; the
// `fields` and `stack` of an event the stream made (trace_events.cpp) are built when first
// read, from the raw values it keeps; python_stack is None until a capture sets it.
#include "bindings/trace_events.h"

#include <structmember.h>  // after Python.h (bindings.h), which it needs

namespace etwtrace::py::bindings::events {

const char* const kNameText[kNames] = {"PythonFunctionPush", "PythonFunctionPop", "PythonFunction",
                                       "PythonMark",         "PythonStackSample", "PythonThread",
                                       "SampledProfile"};
PyObject* g_names[kNames];
PyObject* g_info;
PyObject* g_start;
PyObject* g_stop;
PyObject* g_trace;
PyObject* g_minus_one;
PyObject* g_empty;
PyObject *g_function_id, *g_caller, *g_caller_line, *g_mark, *g_thread_id, *g_begin, *g_end, *g_line, *g_file,
    *g_name, *g_is_python, *g_event, *g_period;
PyObject* g_sample_clocks[3];

PyTypeObject EventBaseType = {PyVarObject_HEAD_INIT(nullptr, 0)};

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
                   {&g_file, "SourceFile"},    {&g_name, "Name"},             {&g_is_python, "IsPythonCode"},
                   {&g_event, "Event"},        {&g_period, "Period"},
                   // SamplerStats::source (format::SampleSource) as perf names its clocks
                   {&g_sample_clocks[0], "task-clock"}, {&g_sample_clocks[1], "cpu-clock"},
                   {&g_sample_clocks[2], "wall-clock"}};
    for (auto& s : strings) {
        if (!(*s.slot = PyUnicode_InternFromString(s.text))) {
            return false;
        }
    }
    return (g_minus_one = PyLong_FromLong(-1)) && (g_empty = PyTuple_New(0));
}

namespace {

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
    case Kind::Sample: {
        const reader::SamplerStats& stats = owner_state(ev)->stream.index().sampler;
        PyObject* clock = ev->flags & format::kSampleWallClock ? g_sample_clocks[2]
                                                               : g_sample_clocks[stats.source < 3 ? stats.source : 0];
        return Py_BuildValue("{OOOK}", g_event, clock, g_period, static_cast<unsigned long long>(stats.period_ns));
    }
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
            ev->stack = ev->sampled ? s->sample_stacks.get(s->sample_tree(), ev->node)
                                    : s->stacks.get(s->call_tree(), ev->node);
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
}  // namespace

int ready_event_base() {
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
    return PyType_Ready(&EventBaseType);
}

}  // namespace etwtrace::py::bindings::events
