// instrument_bench.cpp - no-op hooks whose cost is the floor instrumented mode builds on.
// Test-only: benchmarks/bench_instrumented.py measures fib(30) under each to print the floors
// beside our own figures on the interpreter it runs on.
#include <iterator>

#include "python/instrument_api.h"

namespace etwtrace::py {
namespace {

int noop_profile(PyObject*, PyFrameObject*, int, PyObject*) { return 0; }

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

}  // namespace

bool bench_noop_profile(bool enable) {
#if PY_VERSION_HEX >= 0x030C0000
    PyEval_SetProfileAllThreads(enable ? noop_profile : nullptr, nullptr);
#else
    PyInterpreterState* interp = PyThreadState_Get()->interp;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
        compat::set_thread_profile(t, enable ? noop_profile : nullptr, nullptr);
    }
#endif
    return true;
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
        for (const char* name : py_events) {
            PyObject* bit = PyObject_GetAttrString(events, name);
            PyObject* rr = bit ? PyObject_CallMethod(mon, "register_callback", "iOO", g_bench_tool, bit, Py_None) : nullptr;
            Py_XDECREF(rr);
            Py_XDECREF(bit);
        }
        for (const char* name : c_names) {
            PyObject* bit = PyObject_GetAttrString(events, name);
            PyObject* rr = bit ? PyObject_CallMethod(mon, "register_callback", "iOO", g_bench_tool, bit, Py_None) : nullptr;
            Py_XDECREF(rr);
            Py_XDECREF(bit);
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

}  // namespace etwtrace::py
