// trace_format.h - the one definition of the etwtrace trace file format (no Python.h).
// Prose specification: docs/trace-format.md.
#pragma once

#include <cstdint>

namespace etwtrace::format {

inline constexpr char kMagic[8] = {'E', 'T', 'W', 'T', 'R', 'A', 'C', 'E'};

}  // namespace etwtrace::format
