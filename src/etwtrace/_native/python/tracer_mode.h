// tracer_mode.h - the interface bindings/tracers.cpp drives; one implementation per tracing mode.
//
//   stack_mode.cpp       stack sampling: PEP 523 hook -> per-function thunks -> perf map/jitdump
//   instrument_mode.cpp  instrumentation: call/return hooks -> trace file (+ USDT probes);
//                        the hooks and shared state in instrument_*.cpp, instrument_state.h
//   sampler_mode.cpp     in-process sampler: a signal per period of each thread's CPU time, the
//                        handler copies the Python stack -> trace file (sampler_*.cpp, sampler/)
#pragma once

#include <string>
#include <string_view>

#include "format/trace_format.h"
#include "python/compat.h"

namespace etwtrace::py {

using format::MarkKind;  // upstream's PythonMark opcodes: write_mark(text, kind)

// A str or path option of enable()'s options dict (nullptr: none) into `out`, in the file
// system's encoding; absent or None leaves `out` as it is. False with an exception set.
inline bool enable_option_string(PyObject* options, const char* key, std::string& out) {
    PyObject* value = options ? PyDict_GetItemString(options, key) : nullptr;
    if (!value || value == Py_None) {
        return true;
    }
    PyObject* bytes = nullptr;
    if (!PyUnicode_FSConverter(value, &bytes)) {
        return false;
    }
    out.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
    Py_DECREF(bytes);
    return true;
}

class TracerMode {
public:
    virtual ~TracerMode() = default;
    // Name of the mode, as the launcher and --info spell it ("stack", "instrumented", "sampler").
    virtual const char* name() const = 0;
    // `ignored` (set of file names) and `include` (list of path prefixes) are live objects
    // owned by the Python tracer; `options` is a dict of mode options (may be empty), among
    // them "exclude_prefixes", which both modes hand to FunctionRegistry::configure.
    // Return false with a Python exception set when tracing cannot start.
    virtual bool enable(PyObject* ignored, PyObject* include, PyObject* options) = 0;
    virtual bool disable() = 0;
    virtual bool write_mark(std::string_view text, MarkKind kind) = 0;
    // Extra items appended to the technical-info tuple (a new reference to a tuple).
    virtual PyObject* technical_info() = 0;
};

TracerMode& stack_mode();
TracerMode& instrument_mode();
TracerMode& sampler_mode();

}  // namespace etwtrace::py
