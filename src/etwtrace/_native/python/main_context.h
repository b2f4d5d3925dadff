// main_context.h - running the launcher's target as `python` runs a program.
//
// The launcher (python -m etwtrace ... -- prog.py) is Python code: left alone, its frames
// (runpy, etwtrace.__main__, the CLI, run.py) sit under the program's, where
// traceback.extract_stack(), inspect.stack(), sys._getframe() and tracebacks show them, and
// they spend 8-10 levels of the program's recursion limit. run_as_main() runs the target with
// the thread's frame chain and recursion counters set aside (compat::DetachedFrameChain), as
// `python` starts a program on a fresh thread state, and hands back the uncaught exception
// with the traceback the interpreter would print: the program's frames only (and, for -m and
// directories/zip apps, runpy's, which untraced runs show too).
#pragma once

#include "python/compat.h"

namespace etwtrace::py {

// `target` is a code object (run in the dict `arg` as globals and locals) or a callable
// (called with the tuple `arg`). Returns None when it completes, the exception instance it
// raised (SystemExit included) when it does not; nullptr with an exception set only when the
// arguments are wrong.
PyObject* run_as_main(PyObject* target, PyObject* arg);

}  // namespace etwtrace::py
