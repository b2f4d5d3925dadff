#include "python/main_context.h"

namespace etwtrace::py {

PyObject* run_as_main(PyObject* target, PyObject* arg) {
    bool is_code = PyCode_Check(target);
    if (is_code ? !PyDict_Check(arg) : !(PyCallable_Check(target) && PyTuple_Check(arg))) {
        PyErr_SetString(PyExc_TypeError, "_run_as_main(code, globals_dict) or _run_as_main(callable, args_tuple)");
        return nullptr;
    }
    PyObject* result = nullptr;
    {
        compat::DetachedFrameChain detached(PyThreadState_Get());
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
