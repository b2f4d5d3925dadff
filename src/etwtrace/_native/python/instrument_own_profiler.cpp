// instrument_own_profiler.cpp - a program's own profile function sees exactly the events it
// sees untraced, although ours was active when the program installed it.
//
// `sys.setprofile(hook)` installs `hook` in the middle of its own call. Untraced, nothing
// profiled that call's start, so CPython sends no event for it. Traced, our hook saw the call
// start (3.9 - 3.11: our C profile function made it a profiled call; 3.12+: our sys.monitoring
// CALL made the call site instrumented), and CPython sends the call's return to whichever
// profile function is set by then: `hook` would first see ("c_return", setprofile). Nothing of
// ours runs between the installation and that event, so the builtin that installs a profile
// function on the calling thread (sys.setprofile; threading's bootstrap calls it for
// threading.setprofile) gets a method definition of ours: the same object,
// name and flags, whose C function calls CPython's. When our hook saw the call start and
// untraced nothing would have sent its return, the thread's new profile function is put
// behind first_event_filter for one event: that event is dropped if it is the installing
// call's return (or exception), passed on otherwise, and the program's function is back in
// place either way. 3.12+ sys._setprofileallthreads (threading.setprofile_all_threads) is
// left alone: untraced, its caller's new profile function does get the call's c_return.
#include <iterator>

#include "python/instrument_state.h"

namespace etwtrace::py::instrument {

const void* g_installer_keys[1] = {nullptr};

namespace {

struct Installer {
    const char* name;      // in sys
    PyCFunction original;  // CPython's C function
    PyMethodDef def;       // ours: CPython's with our C function
};

// The installer whose call our hook saw start on this thread, untraced not profiled.
thread_local const void* t_unprofiled_call = nullptr;
// The program's profile function, while first_event_filter stands in front of it.
thread_local Py_tracefunc t_filtered = nullptr;
thread_local const void* t_filtered_key = nullptr;

int first_event_filter(PyObject* obj, PyFrameObject* frame, int what, PyObject* arg) {
    PyThreadState* tstate = PyThreadState_Get();
    Py_tracefunc program = t_filtered;
    const void* key = t_filtered_key;
    t_filtered = nullptr;
    t_filtered_key = nullptr;
    if (!program) {
        return 0;
    }
    compat::replace_thread_profile_function(tstate, program);
    if ((what == PyTrace_C_RETURN || what == PyTrace_C_EXCEPTION) && arg && cfunction_key(arg) == key) {
        return 0;  // the installing call's own return: untraced, nothing sends it
    }
    return program(obj, frame, what, arg);
}

Installer g_installers[] = {
    {"setprofile", nullptr, {}},
};
static_assert(std::size(g_installers) == std::size(g_installer_keys));

template <size_t I>
PyObject* installer_call(PyObject* self, PyObject* arg) {
    Installer& installer = g_installers[I];
    bool unprofiled = t_unprofiled_call == &installer.def;
    t_unprofiled_call = nullptr;
    PyObject* result = installer.original(self, arg);
    PyThreadState* tstate = PyThreadState_Get();
    Py_tracefunc installed = result && unprofiled ? compat::thread_profile_function(tstate) : nullptr;
    if (installed && installed != first_event_filter) {
        t_filtered = installed;
        t_filtered_key = &installer.def;
        compat::replace_thread_profile_function(tstate, first_event_filter);
    }
    return result;
}

template <size_t I>
void hook_installer(PyObject* sys) {
    Installer& installer = g_installers[I];
    if (installer.original) {
        return;  // hooked already (once per process: the object keeps our definition)
    }
    PyObject* fn = PyObject_GetAttrString(sys, installer.name);
    PyMethodDef* def = fn ? compat::builtin_method_def(fn) : nullptr;
    if (def && def->ml_flags == METH_O) {
        installer.original = def->ml_meth;
        installer.def = *def;
        installer.def.ml_meth = installer_call<I>;
        compat::replace_builtin_method_def(fn, &installer.def);
        g_installer_keys[I] = &installer.def;
    }
    Py_XDECREF(fn);  // the sys module keeps it
    PyErr_Clear();   // absent or not CPython's METH_O builtin: nothing to hook
}

}  // namespace

void hook_profile_installers() {
    compat::SavedException saved;
    PyObject* sys = PyImport_ImportModule("sys");
    if (sys) {
        hook_installer<0>(sys);
        Py_DECREF(sys);
    }
    PyErr_Clear();
}

void note_unprofiled_installer_call(const void* key) { t_unprofiled_call = key; }

}  // namespace etwtrace::py::instrument
