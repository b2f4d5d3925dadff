// instrument_api.h - what bindings.cpp's instrumented-mode section calls besides TracerMode:
// the path of the trace being written and the no-op hooks the benchmark measures as floors.
#pragma once

#include <string>

#include "python/compat.h"

namespace etwtrace::py {

// Path of the trace file the instrumented mode is writing (empty when not enabled).
std::string instrument_trace_path();

// Test-only floors (benchmarks/bench_instrumented.py): install/remove a C profile function
// that does nothing on every thread, or sys.monitoring callbacks that do nothing (3.12+;
// `py_events`: PY_START/RESUME/THROW/RETURN/YIELD/UNWIND, `c_events`: CALL/C_RETURN/C_RAISE).
// Return false with an exception set on failure.
bool bench_noop_profile(bool enable);
bool bench_noop_monitoring(bool enable, bool c_events, bool py_events = true);

}  // namespace etwtrace::py
