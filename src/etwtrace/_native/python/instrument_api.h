// instrument_api.h - what the bindings ask the instrumented mode besides TracerMode.
#pragma once

#include <string>

#include "python/compat.h"

namespace etwtrace::py {

// Path of the trace file the instrumented mode is writing (empty when not enabled).
std::string instrument_trace_path();

// Path of the trace file the sampler is writing (empty when not enabled).
std::string sampler_trace_path();

}  // namespace etwtrace::py
