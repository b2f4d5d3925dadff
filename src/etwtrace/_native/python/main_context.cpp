#include "python/main_context.h"

#include "python/sampler_state.h"

namespace etwtrace::py {

namespace {

// The eval-loop calls the thread's frames are in (the sampler's walk marks each call's first
// frame): what the launcher sets aside while the target runs.
size_t eval_calls(PyThreadState* tstate) {
    constexpr size_t kMax = 256;
    uint64_t words[2 * kMax];
    bool truncated = false;
    const size_t frames = compat::walk_sampled_frames(tstate, words, kMax, truncated);
    size_t calls = 0;
    for (size_t i = 0; i < frames; ++i) {
        calls += (words[2 * i] & 1) ? 1 : 0;
    }
    // The outermost frame starts a call whether marked or not (sampler_resolve.cpp: groups).
    if (frames && !(words[2 * (frames - 1)] & 1)) {
        ++calls;
    }
    return calls;
}

}  // namespace

PyObject* run_as_main(PyObject* target, PyObject* arg) {
    bool is_code = PyCode_Check(target);
    if (is_code ? !PyDict_Check(arg) : !(PyCallable_Check(target) && PyTuple_Check(arg))) {
        PyErr_SetString(PyExc_TypeError, "_run_as_main(code, globals_dict) or _run_as_main(callable, args_tuple)");
        return nullptr;
    }
    PyObject* result = nullptr;
    {
        PyThreadState* tstate = PyThreadState_Get();
        sampling::set_hidden_eval_calls(tstate, eval_calls(tstate));
        compat::DetachedFrameChain detached(tstate);
        result = is_code ? PyEval_EvalCode(target, arg, arg) : PyObject_Call(target, arg, nullptr);
        if (result == nullptr) {
            // Taken while the frame chain is still the program's: nothing of ours is added.
            PyObject* exc = compat::take_exception();
            if (exc == nullptr) {
                Py_RETURN_NONE;
            }
            return exc;
        }
    }
    Py_DECREF(result);
    Py_RETURN_NONE;
}

}  // namespace etwtrace::py
