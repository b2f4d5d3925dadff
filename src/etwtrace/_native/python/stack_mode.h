// stack_mode.h - entry points of stack_mode.cpp besides TracerMode (see tracer_mode.h).
#pragma once

#include "python/compat.h"

namespace etwtrace::py {

// _etwtrace._bench_noop_hook(enable): installs (or removes) a PEP 523 hook that only calls the
// default evaluator: the cost floor of any eval-frame hook, measured by benchmarks/bench_stack.py.
// Not part of the public API.
PyObject* bench_noop_hook(PyObject* module, PyObject* enable);

}  // namespace etwtrace::py
