// bench_floors.cpp - the no-op hooks whose cost is the floor each tracing mode builds on.
// Test-only, not public API: benchmarks/bench_stack.py and bench_instrumented.py run fib(30)
// under each to print the floors beside our own figures on the interpreter they run on.
//
//   _bench_noop_hook(enable)        a PEP 523 eval-frame hook that only calls the default
//                                   evaluator: the floor of stack sampling
//   _bench_noop_profile(enable)     a C profile function that does nothing, on every thread
//   _bench_noop_monitoring(enable, c_events=True, py_events=True)
//                                   sys.monitoring callbacks that do nothing (3.12+;
//                                   py_events: PY_START/RESUME/THROW/RETURN/YIELD/UNWIND,
//                                   c_events: CALL/C_RETURN/C_RAISE)
#include "bindings/bindings.h"

namespace etwtrace::py::bindings {
namespace {

// ---- eval-frame hook ------------------------------------------------------------------------

PyObject* noop_eval_frame(PyThreadState* tstate, compat::EvalFrame* frame, int throwflag) {
    return compat::eval_frame_default(tstate, frame, throwflag);
}

PyObject* py_bench_noop_hook(PyObject*, PyObject* arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) {
        return nullptr;
    }
    PyInterpreterState* interp = PyThreadState_Get()->interp;
    compat::EvalFrameFunction current = compat::get_eval_frame(interp);
    if (on) {
        if (current != compat::default_eval_frame() && current != &noop_eval_frame) {
            PyErr_SetString(PyExc_RuntimeError, "another frame-evaluation hook is installed");
            return nullptr;
        }
        compat::set_eval_frame(interp, &noop_eval_frame);
    } else if (current == &noop_eval_frame) {
        compat::set_eval_frame(interp, compat::default_eval_frame());
    }
    Py_RETURN_NONE;
}

// ---- C profile function ---------------------------------------------------------------------

int noop_profile(PyObject*, PyFrameObject*, int, PyObject*) { return 0; }

PyObject* py_bench_noop_profile(PyObject*, PyObject* arg) {
    int enable = PyObject_IsTrue(arg);
    if (enable < 0 || compat::set_profile_all_threads(enable ? noop_profile : nullptr, nullptr) < 0) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

// ---- sys.monitoring -------------------------------------------------------------------------

PyObject* noop_callback(PyObject*, PyObject* const*, Py_ssize_t) { Py_RETURN_NONE; }
PyMethodDef noop_def = {"noop", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(noop_callback)),
                        METH_FASTCALL, nullptr};

int g_bench_tool = -1;

PyObject* monitoring() {
    PyObject* sys = PyImport_ImportModule("sys");
    PyObject* mon = sys ? PyObject_GetAttrString(sys, "monitoring") : nullptr;
    Py_XDECREF(sys);
    return mon;
}

bool bench_noop_monitoring(bool enable, bool c_events, bool py_events_on) {
    if (!compat::has_sys_monitoring()) {
        PyErr_SetString(PyExc_NotImplementedError, "sys.monitoring needs CPython 3.12+");
        return false;
    }
    PyObject* mon = monitoring();
    if (!mon) {
        return false;
    }
    const char* py_events[] = {"PY_START", "PY_RESUME", "PY_THROW", "PY_RETURN", "PY_YIELD", "PY_UNWIND"};
    const char* c_names[] = {"CALL", "C_RETURN", "C_RAISE"};
    bool ok = true;
    PyObject* events = PyObject_GetAttrString(mon, "events");
    if (!events) {
        Py_DECREF(mon);
        return false;
    }
    if (enable) {
        const int id = 5;  // OPTIMIZER_ID: unused by the tools a benchmark runs beside
        PyObject* r = PyObject_CallMethod(mon, "use_tool_id", "is", id, "etwtrace-bench");
        ok = r != nullptr;
        Py_XDECREF(r);
        long mask = 0;
        PyObject* fn = ok ? PyCFunction_New(&noop_def, nullptr) : nullptr;
        auto add = [&](const char* name) {
            PyObject* bit = PyObject_GetAttrString(events, name);
            PyObject* rr = bit ? PyObject_CallMethod(mon, "register_callback", "iOO", id, bit, fn) : nullptr;
            ok = ok && rr != nullptr;
            if (rr) {
                mask |= PyLong_AsLong(bit);
            }
            Py_XDECREF(rr);
            Py_XDECREF(bit);
        };
        if (py_events_on) {
            for (const char* name : py_events) {
                if (ok) add(name);
            }
        }
        if (c_events) {
            for (const char* name : c_names) {
                if (ok) add(name);
            }
        }
        Py_XDECREF(fn);
        if (ok) {
            r = PyObject_CallMethod(mon, "set_events", "il", id, mask);
            ok = r != nullptr;
            Py_XDECREF(r);
        }
        g_bench_tool = ok ? id : -1;
    } else if (g_bench_tool >= 0) {
        PyObject* r = PyObject_CallMethod(mon, "set_events", "ii", g_bench_tool, 0);
        Py_XDECREF(r);
        auto clear = [&](const char* name) {
            PyObject* bit = PyObject_GetAttrString(events, name);
            PyObject* rr = bit ? PyObject_CallMethod(mon, "register_callback", "iOO", g_bench_tool, bit, Py_None) : nullptr;
            Py_XDECREF(rr);
            Py_XDECREF(bit);
        };
        for (const char* name : py_events) {
            clear(name);
        }
        for (const char* name : c_names) {
            clear(name);
        }
        r = PyObject_CallMethod(mon, "free_tool_id", "i", g_bench_tool);
        ok = r != nullptr;
        Py_XDECREF(r);
        g_bench_tool = -1;
    }
    Py_DECREF(events);
    Py_DECREF(mon);
    return ok;
}

PyObject* py_bench_noop_monitoring(PyObject*, PyObject* args) {
    int enable = 0, c_events = 1, py_events = 1;
    if (!PyArg_ParseTuple(args, "p|pp:_bench_noop_monitoring", &enable, &c_events, &py_events) ||
        !bench_noop_monitoring(enable != 0, c_events != 0, py_events != 0)) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

}  // namespace

PyMethodDef bench_floor_methods[] = {
    {"_bench_noop_hook", py_bench_noop_hook, METH_O,
     "_bench_noop_hook(enable)\n\nInstall/remove a no-op eval-frame hook (benchmark floor)."},
    {"_bench_noop_profile", py_bench_noop_profile, METH_O,
     "_bench_noop_profile(enable)\n\nInstall/remove a no-op C profile function (benchmark floor)."},
    {"_bench_noop_monitoring", py_bench_noop_monitoring, METH_VARARGS,
     "_bench_noop_monitoring(enable, c_events=True, py_events=True)\n\nNo-op sys.monitoring callbacks (floor)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace etwtrace::py::bindings
