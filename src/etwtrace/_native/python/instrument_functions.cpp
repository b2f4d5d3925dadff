// instrument_functions.cpp - instrumented mode's function definitions: the PythonFunction
// events (with each Python function's line table) written when the registry publishes a
// function, and the slow path of the C function cache (instrument_state.h has the fast one).
#include <cstring>
#include <utility>

#include "python/instrument_state.h"

namespace etwtrace::py::instrument {
namespace {

// ---- line tables -----------------------------------------------------------------------------

void append_run(LineTable& runs, long offset, long line) {
    if (offset < 0 || line < 0) {
        return;
    }
    if (!runs.empty() && runs.back().offset == static_cast<uint32_t>(offset)) {
        runs.back().line = static_cast<int32_t>(line);
        return;
    }
    if (!runs.empty() && runs.back().line == static_cast<int32_t>(line)) {
        return;
    }
    runs.push_back({static_cast<uint32_t>(offset), static_cast<int32_t>(line)});
}

// Bytecode byte offset -> line runs, read once per published function.
LineTable line_table(PyCodeObject* code) {
    LineTable runs;
    compat::SavedException saved;
    if (compat::code_has_co_lines()) {
        PyObject* it = PyObject_CallMethod(reinterpret_cast<PyObject*>(code), "co_lines", nullptr);
        PyObject* iter = it ? PyObject_GetIter(it) : nullptr;
        Py_XDECREF(it);
        long last_line = compat::code_first_line(code);
        while (iter) {
            PyObject* item = PyIter_Next(iter);
            if (!item) {
                break;
            }
            long start = -1, line = -1;
            if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 3) {
                start = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
                PyObject* l = PyTuple_GET_ITEM(item, 2);
                line = l == Py_None ? last_line : PyLong_AsLong(l);
            }
            Py_DECREF(item);
            append_run(runs, start, line);
            if (line >= 0) {
                last_line = line;
            }
        }
        Py_XDECREF(iter);
    } else {
        PyObject* lnotab = compat::code_lnotab(code);
        if (lnotab && PyBytes_Check(lnotab)) {
            const auto* p = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(lnotab));
            Py_ssize_t n = PyBytes_GET_SIZE(lnotab) / 2;
            long addr = 0, line = compat::code_first_line(code);
            append_run(runs, 0, line);
            for (Py_ssize_t i = 0; i < n; ++i) {
                addr += p[2 * i];
                line += static_cast<signed char>(p[2 * i + 1]);
                append_run(runs, addr, line);
            }
        }
    }
    PyErr_Clear();
    return runs;
}

}  // namespace

// ---- events ----------------------------------------------------------------------------------

void write_definition(ThreadState* ts, FunctionRecord* record, const LineTable& lines) {
    ts->buffer.function(record->id, record->is_python, record->first_line, 0, 0, record->filename(),
                        record->qualname, lines);
    if (probes::function_enabled()) {
        probes::function(record->id, 0, 0, record->first_line, record->filename().c_str(), record->qualname.c_str(),
                         record->is_python ? 1 : 0);
    }
}

// Writes the PythonFunction events the registry asked for while looking `code` up.
__attribute__((noinline)) void flush_pending(ThreadState* ts, PyCodeObject* code, FunctionRecord* looked_up) {
    std::vector<FunctionRecord*> pending;
    pending.swap(ts->pending);
    for (FunctionRecord* record : pending) {
        LineTable lines;
        if (record->is_python && code && record == looked_up) {
            lines = line_table(code);
        }
        write_definition(ts, record, lines);
        g_published.add(record, lines);
    }
}

// ---- C functions -----------------------------------------------------------------------------

namespace {

bool is_own_module(PyObject* self) {
    if (!self || !PyModule_Check(self)) {
        return false;
    }
    const char* name = PyModule_GetName(self);
    if (!name) {
        PyErr_Clear();
        return false;
    }
    return std::strcmp(name, "etwtrace._etwtrace") == 0;
}

}  // namespace

__attribute__((noinline)) CacheSlot* cfunction_lookup_slow(PyObject* callable, PyObject* self_arg, const void* key,
                                                           CacheSlot& slot) {
    FunctionRecord* record = nullptr;
    bool cacheable = true;
    {
        compat::SavedException saved;
        if (PyCFunction_Check(callable)) {
            if (!is_own_module(reinterpret_cast<PyCFunctionObject*>(callable)->m_self)) {
                record = registry().lookup_cfunction(callable);
            }
        } else {
            // A method descriptor called with self: bind it once to name it like the interpreter's
            // own C_CALL events do ("list.append").
            auto* descr = reinterpret_cast<PyMethodDescrObject*>(callable);
            if (self_arg && PyObject_TypeCheck(self_arg, descr->d_common.d_type)) {
                PyObject* bound = Py_TYPE(callable)->tp_descr_get(callable, self_arg, reinterpret_cast<PyObject*>(Py_TYPE(self_arg)));
                if (bound) {
                    if (PyCFunction_Check(bound)) {
                        record = registry().lookup_cfunction(bound);
                    }
                    Py_DECREF(bound);
                }
            } else {
                cacheable = false;
            }
        }
        PyErr_Clear();
    }
    static CacheSlot uncached;
    CacheSlot* out = cacheable ? &slot : &uncached;
    out->key = key;
    out->record = record;
    out->epoch = g_epoch;
    out->flush_first = record && !record->is_python && record->qualname == "_exit" &&
                       (record->filename() == "posix" || record->filename() == "os");
    return out;
}

}  // namespace etwtrace::py::instrument
