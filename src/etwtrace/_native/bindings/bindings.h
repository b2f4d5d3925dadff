// bindings.h - the parts of etwtrace._etwtrace, the native module's whole Python-visible
// surface, one file per thing it exposes:
//
//   module.cpp        the module itself: PyInit, _get_technical_info (version, platform)
//   tracers.cpp       enable, disable, write_mark, active_mode, _instrumented_trace_path,
//                     _run_as_main
//   trace_data.cpp    trace files: _read_trace and the _trace_* functions over its result,
//                     _trace_aggregate, _trace_decode_rate
//   bench_floors.cpp  the no-op hooks benchmarks measure as floors: _bench_noop_hook,
//                     _bench_noop_profile, _bench_noop_monitoring
//
// Plain CPython C API (no binding library): the surface is a handful of functions, the hot
// paths live in the hooks and never cross these files, and the module then builds against any
// CPython 3.9+ with nothing but the interpreter's own headers.
#pragma once

#include "python/compat.h"
#include "python/tracer_mode.h"

namespace etwtrace::py::bindings {

// Each part's functions, terminated by a {nullptr} entry; module.cpp adds them all.
extern PyMethodDef tracer_methods[];
extern PyMethodDef trace_data_methods[];
extern PyMethodDef bench_floor_methods[];

// The mode called `name` ("stack", "instrumented"/"instrument"), or nullptr with ValueError set.
TracerMode* mode_by_name(const char* name);

}  // namespace etwtrace::py::bindings
