// bindings.h - the parts of etwtrace._etwtrace, the native module's whole Python-visible
// surface, one file per thing it exposes:
//
//   module.cpp        the module itself: PyInit, _get_technical_info (version, platform)
//   tracers.cpp       enable, disable, write_mark, active_mode, _instrumented_trace_path,
//                     _run_as_main
//   trace_events.cpp  trace files as etwtrace.read() streams them: TraceReader (the index
//                     of a file, its events() iterator, stacks_at)
//   event_base.cpp    EventBase, the storage of etwtrace._read.Event (trace_events.h: what
//                     the two share)
//   trace_data.cpp    trace files decoded whole (_read_trace and the _trace_* functions over
//                     its result: the reference the tests compare the stream with),
//                     _trace_aggregate, _trace_decode_rate
//   bench_floors.cpp  the no-op hooks benchmarks measure as floors: _bench_noop_hook,
//                     _bench_noop_profile, _bench_noop_monitoring
//
// Plain CPython C API (no binding library): the surface is a handful of functions, the hot
// paths live in the hooks and never cross these files, and the module then builds against any
// CPython 3.9+ with nothing but the interpreter's own headers.
#pragma once

#include <string_view>
#include <vector>

#include "python/compat.h"
#include "python/tracer_mode.h"
#include "reader/trace_reader.h"

namespace etwtrace::py::bindings {

// Each part's functions, terminated by a {nullptr} entry; module.cpp adds them all.
extern PyMethodDef tracer_methods[];
extern PyMethodDef trace_data_methods[];
extern PyMethodDef bench_floor_methods[];

// Adds the types of trace_events.cpp to the module; -1 with an exception set on failure.
int add_trace_event_types(PyObject* module);

// Shared by trace_data.cpp and trace_events.cpp:
// the header and integrity counters as a dict (what TraceFile.info is), "events" = `events`;
PyObject* trace_info_dict(const reader::TraceSummary& t, size_t events);
// (id, name, source_file, line, is_python, begin, end) per function, in file order;
PyObject* function_list(const std::vector<reader::Function>& functions);
// text of the file as str (undecodable bytes as surrogate escapes);
PyObject* text_from_file(std::string_view text);
// the sampler's counters as a dict (TraceFile.sampler), None when the file has no SamplerStats.
PyObject* sampler_stats_dict(const reader::SamplerStats& stats, uint64_t unknown_nodes);

// The mode called `name` ("stack", "instrumented"/"instrument"), or nullptr with ValueError set.
TracerMode* mode_by_name(const char* name);

}  // namespace etwtrace::py::bindings
