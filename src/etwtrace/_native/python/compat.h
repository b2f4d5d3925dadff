// compat.h - every CPython version difference the native core depends on.
//
// The rest of the core never tests PY_VERSION_HEX: it calls the small inline functions here.
// Supported: CPython 3.9 - 3.13 (default, GIL-enabled builds).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <ctime>

#if PY_VERSION_HEX < 0x03090000
#error "etwtrace needs CPython 3.9 or newer"
#endif

namespace etwtrace::compat {

#if PY_VERSION_HEX >= 0x030B0000
// From 3.11 the eval-frame hook receives an interpreter frame, whose layout is internal.
// We mirror only the leading fields we read; tests on every version check them.
struct InterpreterFrame;
using EvalFrame = InterpreterFrame;
#else
using EvalFrame = PyFrameObject;
#endif

using EvalFrameFunction = PyObject* (*)(PyThreadState*, EvalFrame*, int);

#if PY_VERSION_HEX >= 0x030D0000
struct InterpreterFrameHead { PyObject* f_executable; };   // 3.13: code object (or None)
#elif PY_VERSION_HEX >= 0x030C0000
struct InterpreterFrameHead { PyCodeObject* f_code; };     // 3.12
#elif PY_VERSION_HEX >= 0x030B0000
struct InterpreterFrameHead {                              // 3.11
    PyObject* f_func;
    PyObject* f_globals;
    PyObject* f_builtins;
    PyObject* f_locals;
    PyCodeObject* f_code;
};
#endif

// The code object a frame executes, or nullptr for frames that run no code object.
inline PyCodeObject* frame_code(EvalFrame* frame) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* executable = reinterpret_cast<InterpreterFrameHead*>(frame)->f_executable;
    return PyCode_Check(executable) ? reinterpret_cast<PyCodeObject*>(executable) : nullptr;
#elif PY_VERSION_HEX >= 0x030B0000
    return reinterpret_cast<InterpreterFrameHead*>(frame)->f_code;
#else
    return frame->f_code;
#endif
}

inline EvalFrameFunction get_eval_frame(PyInterpreterState* interp) {
    return reinterpret_cast<EvalFrameFunction>(_PyInterpreterState_GetEvalFrameFunc(interp));
}

inline void set_eval_frame(PyInterpreterState* interp, EvalFrameFunction fn) {
    _PyInterpreterState_SetEvalFrameFunc(interp, reinterpret_cast<_PyFrameEvalFunction>(fn));
}

inline EvalFrameFunction default_eval_frame() {
    return reinterpret_cast<EvalFrameFunction>(&_PyEval_EvalFrameDefault);
}

// The underscore names are deprecated aliases from 3.12 on.
#if PY_VERSION_HEX >= 0x030C0000
#define ETWTRACE_REQUEST_CODE_EXTRA_INDEX PyUnstable_Eval_RequestCodeExtraIndex
#define ETWTRACE_CODE_GET_EXTRA PyUnstable_Code_GetExtra
#define ETWTRACE_CODE_SET_EXTRA PyUnstable_Code_SetExtra
#else
#define ETWTRACE_REQUEST_CODE_EXTRA_INDEX _PyEval_RequestCodeExtraIndex
#define ETWTRACE_CODE_GET_EXTRA _PyCode_GetExtra
#define ETWTRACE_CODE_SET_EXTRA _PyCode_SetExtra
#endif

inline Py_ssize_t request_code_extra_index(freefunc free_fn) {
    return ETWTRACE_REQUEST_CODE_EXTRA_INDEX(free_fn);
}

inline void* get_code_extra(PyCodeObject* code, Py_ssize_t index) {
    void* extra = nullptr;
    if (ETWTRACE_CODE_GET_EXTRA(reinterpret_cast<PyObject*>(code), index, &extra) < 0) {
        PyErr_Clear();
        return nullptr;
    }
    return extra;
}

inline bool set_code_extra(PyCodeObject* code, Py_ssize_t index, void* extra) {
    if (ETWTRACE_CODE_SET_EXTRA(reinterpret_cast<PyObject*>(code), index, extra) < 0) {
        PyErr_Clear();
        return false;
    }
    return true;
}

// Qualified name where the code object knows it (3.11+); the plain name before that.
// (function_registry.cpp recovers qualified names on 3.9/3.10 from the enclosing code.)
inline PyObject* code_qualname(PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030B0000
    return code->co_qualname;
#else
    return code->co_name;
#endif
}

inline bool code_has_qualname() { return PY_VERSION_HEX >= 0x030B0000; }

inline PyObject* code_name(PyCodeObject* code) { return code->co_name; }
inline PyObject* code_filename(PyCodeObject* code) { return code->co_filename; }
inline int code_first_line(PyCodeObject* code) { return code->co_firstlineno; }

// Line being executed in a frame object (used for PythonFunctionPush's CallerLine).
inline int frame_object_line(PyFrameObject* frame) { return PyFrame_GetLineNumber(frame); }

inline PyFrameObject* thread_frame(PyThreadState* tstate) {
    return PyThreadState_GetFrame(tstate);  // new reference (3.9+)
}

// ---- instrumented mode (instrument_*.cpp) ---------------------------------------------------

// The code object of a frame object, borrowed (the frame keeps it alive).
inline PyCodeObject* frame_object_code(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    PyCodeObject* code = PyFrame_GetCode(frame);
    Py_DECREF(code);
    return code;
#else
    return frame->f_code;
#endif
}

// Byte offset of the instruction a frame object is executing (the call site while it calls).
inline int frame_object_lasti_bytes(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLasti(frame);
#elif PY_VERSION_HEX >= 0x030A0000
    return frame->f_lasti * 2;  // 3.10 counts code units
#else
    return frame->f_lasti;
#endif
}

// Installs (or removes, func == nullptr) the C profile function on one thread.
inline int set_thread_profile(PyThreadState* tstate, Py_tracefunc func, PyObject* arg) {
#if PY_VERSION_HEX >= 0x030C0000
    (void)tstate;  // use PyEval_SetProfileAllThreads on 3.12+
    PyEval_SetProfileAllThreads(func, arg);
    return 0;
#else
    return _PyEval_SetProfile(tstate, func, arg);
#endif
}

// The profile function a thread's events go to (the program's own hook: CPython's trampoline),
// read and replaced without touching its profile object, the audit hook or the event masks.
inline Py_tracefunc thread_profile_function(PyThreadState* tstate) { return tstate->c_profilefunc; }
inline void replace_thread_profile_function(PyThreadState* tstate, Py_tracefunc func) { tstate->c_profilefunc = func; }

// Gives one builtin function object another method definition (same flags, so its vectorcall
// stays right): the object, its name, repr and every reference to it stay the same.
inline PyMethodDef* builtin_method_def(PyObject* fn) {
    return PyCFunction_CheckExact(fn) ? reinterpret_cast<PyCFunctionObject*>(fn)->m_ml : nullptr;
}
inline void replace_builtin_method_def(PyObject* fn, PyMethodDef* def) {
    reinterpret_cast<PyCFunctionObject*>(fn)->m_ml = def;
}

// Installs (or removes) the C profile function on every thread of the current interpreter
// (3.12+ also on threads started later). Returns -1 with an exception set on failure.
inline int set_profile_all_threads(Py_tracefunc func, PyObject* arg) {
#if PY_VERSION_HEX >= 0x030C0000
    PyEval_SetProfileAllThreads(func, arg);
#else
    PyInterpreterState* interp = PyThreadState_Get()->interp;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
        if (_PyEval_SetProfile(t, func, arg) < 0) {
            return -1;
        }
    }
#endif
    return 0;
}

// The bytecode of a code object (a new reference to bytes).
inline PyObject* code_bytes(PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030B0000
    return PyCode_GetCode(code);
#else
    Py_XINCREF(code->co_code);
    return code->co_code;
#endif
}

inline bool has_sys_monitoring() { return PY_VERSION_HEX >= 0x030C0000; }

// A sys.monitoring callback's instruction offset (an int): read in place when it is compact
// (always, for real bytecode offsets), else through the general conversion.
inline uint32_t monitoring_offset(PyObject* offset) {
#if PY_VERSION_HEX >= 0x030C0000
    auto* value = reinterpret_cast<PyLongObject*>(offset);
    if (__builtin_expect(PyLong_CheckExact(offset) && PyUnstable_Long_IsCompact(value), 1)) {
        return static_cast<uint32_t>(PyUnstable_Long_CompactValue(value));
    }
#endif
    return static_cast<uint32_t>(PyLong_AsUnsignedLong(offset));
}

// monitoring_offset() when it needs no call (a small int, always on 3.12+): false otherwise.
inline bool monitoring_offset_without_call(PyObject* offset, uint32_t& value) {
#if PY_VERSION_HEX >= 0x030C0000
    auto* number = reinterpret_cast<PyLongObject*>(offset);
    if (__builtin_expect(PyLong_CheckExact(offset) && PyUnstable_Long_IsCompact(number), 1)) {
        value = static_cast<uint32_t>(PyUnstable_Long_CompactValue(number));
        return true;
    }
#endif
    (void)offset;
    (void)value;
    return false;
}

// What _thread's thread bootstrap does with an exception escaping a thread's function
// (3.9-3.11, the versions that need our _thread.start_new_thread wrapper): SystemExit is
// silent, anything else goes to sys.unraisablehook as "in thread started by <function>".
inline void report_thread_exception([[maybe_unused]] PyObject* function) {
#if PY_VERSION_HEX < 0x030C0000
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyErr_Clear();
    } else {
        _PyErr_WriteUnraisableMsg("in thread started by", function);
    }
#else
    PyErr_Clear();
#endif
}

// Line tables: code.co_lines() from 3.10; before that the co_lnotab bytes (borrowed).
inline bool code_has_co_lines() { return PY_VERSION_HEX >= 0x030A0000; }
inline PyObject* code_lnotab([[maybe_unused]] PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030A0000
    return nullptr;
#else
    return code->co_lnotab;
#endif
}

// ---- stack sampling mode (stack_mode.cpp, function_registry.*) ---------------------------------

// co_extra[index] read straight from the code object: the eval hook's hot path. Same result as
// PyUnstable_Code_GetExtra / _PyCode_GetExtra without the call and argument checks. The layout
// is _PyCodeObjectExtra from the internal headers, unchanged from 3.6 through 3.13.
inline void* get_code_extra_fast(PyCodeObject* code, Py_ssize_t index) {
    struct CodeExtra {
        Py_ssize_t ce_size;
        void* ce_extras[1];
    };
    auto* extra = static_cast<CodeExtra*>(code->co_extra);
    // Unsigned compare: a negative index (no slot yet) reads nothing.
    return (extra != nullptr && static_cast<size_t>(index) < static_cast<size_t>(extra->ce_size))
               ? extra->ce_extras[index]
               : nullptr;
}

// Whether frame_code() can return nullptr (3.13: frames whose f_executable is not code).
inline constexpr bool kFrameCodeCanBeNull = PY_VERSION_HEX >= 0x030D0000;

// Saves the exception in flight (if any) and restores it when it goes out of scope, around
// work done inside hooks and callbacks, which run with exceptions in flight and must leave
// them as they found them. Work that may raise should PyErr_Clear() before the scope ends.
struct SavedException {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject* exc = nullptr;
    SavedException() : exc(PyErr_GetRaisedException()) {}
    ~SavedException() { PyErr_SetRaisedException(exc); }
#else
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    SavedException() { PyErr_Fetch(&type, &value, &tb); }
    ~SavedException() { PyErr_Restore(type, value, tb); }
#endif
    SavedException(const SavedException&) = delete;
    SavedException& operator=(const SavedException&) = delete;
};

// The interpreter's own eval-frame function, callable with our frame type.
inline PyObject* eval_frame_default(PyThreadState* tstate, EvalFrame* frame, int throwflag) {
#if PY_VERSION_HEX >= 0x030B0000
    return _PyEval_EvalFrameDefault(tstate, reinterpret_cast<struct _PyInterpreterFrame*>(frame), throwflag);
#else
    return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
#endif
}

// ---- recursion accounting of hooked frames (stack_mode.cpp) ------------------------------------

// Whether a Python-to-Python call runs on the C stack untraced. 3.9/3.10: yes, always, and the
// hook only adds its thunk's 16 bytes. 3.11+: no, the eval loop inlines it; under a PEP 523
// hook it cannot, so each level costs C stack the untraced program does not spend, and the
// hook protects the stack itself (thunks/stack_segments.h).
inline constexpr bool kHookedCallsNeedStackCheck = PY_VERSION_HEX >= 0x030B0000;

// 3.12/3.13: _PyEval_EvalFrameDefault charges PY_EVAL_C_STACK_UNITS (2, ceval.c) to the C
// recursion budget (tstate->c_recursion_remaining, C_RECURSION_LIMIT 1500 / Py_C_RECURSION_LIMIT
// 10000) on entry and gives them back on exit; a call the eval loop inlines charges nothing.
// Under a PEP 523 hook no call is inlined, so deep Python recursion ran out of the C budget at
// 1500/2 or 10000/2 levels. stack_mode.cpp credits the units back for calls that untraced
// would have been inlined. 3.9 - 3.11 count one unit per Python frame, hooked or not: 0 here.
inline constexpr int kEvalEntryCUnits = PY_VERSION_HEX >= 0x030C0000 ? 2 : 0;

inline int c_recursion_remaining([[maybe_unused]] PyThreadState* tstate) {
#if PY_VERSION_HEX >= 0x030C0000
    return tstate->c_recursion_remaining;
#else
    return 0;
#endif
}

inline void add_c_recursion_remaining([[maybe_unused]] PyThreadState* tstate, [[maybe_unused]] int units) {
#if PY_VERSION_HEX >= 0x030C0000
    tstate->c_recursion_remaining += units;
#endif
}

// ---- running the target as __main__ (main_context.cpp) -----------------------------------------

// The thread state's slot for its innermost frame.
#if PY_VERSION_HEX >= 0x030D0000
using InnermostFrame = struct _PyInterpreterFrame*;
inline InnermostFrame& innermost_frame_slot(PyThreadState* tstate) { return tstate->current_frame; }
#elif PY_VERSION_HEX >= 0x030B0000
using InnermostFrame = struct _PyInterpreterFrame*;
inline InnermostFrame& innermost_frame_slot(PyThreadState* tstate) { return tstate->cframe->current_frame; }
#else
using InnermostFrame = PyFrameObject*;
inline InnermostFrame& innermost_frame_slot(PyThreadState* tstate) { return tstate->frame; }
#endif

// How many Python frames the thread's recursion limit is charged with.
inline int python_recursion_depth(PyThreadState* tstate) {
#if PY_VERSION_HEX >= 0x030C0000
    return tstate->py_recursion_limit - tstate->py_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030B0000
    return tstate->recursion_limit - tstate->recursion_remaining;
#else
    return tstate->recursion_depth;
#endif
}

inline void set_python_recursion_depth(PyThreadState* tstate, int depth) {
#if PY_VERSION_HEX >= 0x030C0000
    tstate->py_recursion_remaining = tstate->py_recursion_limit - depth;
#elif PY_VERSION_HEX >= 0x030B0000
    tstate->recursion_remaining = tstate->recursion_limit - depth;
#else
    tstate->recursion_depth = depth;
#endif
}

// A new thread's C recursion budget (3.12+; no such budget before).
#if PY_VERSION_HEX >= 0x030D0000
inline constexpr int kFreshCRecursionBudget = Py_C_RECURSION_LIMIT;
#elif PY_VERSION_HEX >= 0x030C0000
inline constexpr int kFreshCRecursionBudget = C_RECURSION_LIMIT;
#else
inline constexpr int kFreshCRecursionBudget = 0;
#endif

inline void set_c_recursion_remaining([[maybe_unused]] PyThreadState* tstate, [[maybe_unused]] int units) {
#if PY_VERSION_HEX >= 0x030C0000
    tstate->c_recursion_remaining = units;
#endif
}

// The thread's frame chain and recursion depth, set aside while the launcher runs the
// program's code, so that the program sees what `python prog.py` shows it: no frame above its
// own (traceback.extract_stack(), inspect.stack(), sys._getframe() depth, tracebacks) and the
// recursion depth and C budget of a fresh thread. Depths are saved, not raw counters, because
// the program may change the recursion limit meanwhile (sys.setrecursionlimit keeps depths).
class DetachedFrameChain {
public:
    explicit DetachedFrameChain(PyThreadState* tstate)
        : tstate_(tstate),
          frame_(innermost_frame_slot(tstate)),
          py_depth_(python_recursion_depth(tstate)),
          c_remaining_(c_recursion_remaining(tstate)) {
        innermost_frame_slot(tstate) = nullptr;
        set_python_recursion_depth(tstate, 0);
        set_c_recursion_remaining(tstate, kFreshCRecursionBudget);
    }
    ~DetachedFrameChain() {
        innermost_frame_slot(tstate_) = frame_;
        set_python_recursion_depth(tstate_, py_depth_);
        set_c_recursion_remaining(tstate_, c_remaining_);
    }
    DetachedFrameChain(const DetachedFrameChain&) = delete;
    DetachedFrameChain& operator=(const DetachedFrameChain&) = delete;

private:
    PyThreadState* tstate_;
    InnermostFrame frame_;
    int py_depth_;
    int c_remaining_;
};

// The exception in flight, taken out of the thread state: a new reference to the normalised
// exception instance, its __traceback__ set; nullptr if none.
inline PyObject* take_exception() {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    if (type == nullptr) {
        return nullptr;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != nullptr && value != nullptr) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

// ---- code objects' lifetime (function_registry.cpp) ---------------------------------------------

// The bytes of a code object's line table (borrowed): what, with its names and first line,
// tells two code objects' published definitions apart.
inline PyObject* code_line_table(PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030A0000
    return code->co_linetable;
#else
    return code->co_lnotab;
#endif
}


// ---- the in-process sampler (sampler_mode.cpp, sampler_resolve.cpp) -------------------------

// The interpreter frame layouts the sampler's signal handler reads with plain loads (it may
// call nothing). Mirrors of internal/pycore_frame.h and cpython/pystate.h, leading fields only.
#if PY_VERSION_HEX >= 0x030B0000
using SampledCodeUnit = uint16_t;  // _Py_CODEUNIT (internal from 3.13): one 2-byte code unit
// _PyCode_CODE(code): the first code unit of the (adaptive) bytecode.
inline SampledCodeUnit* sampled_code_start(PyCodeObject* code) {
    return reinterpret_cast<SampledCodeUnit*>(code->co_code_adaptive);
}
#endif
#if PY_VERSION_HEX >= 0x030D0000
struct SampledInterpreterFrame {  // 3.13
    PyObject* f_executable;
    SampledInterpreterFrame* previous;
    PyObject* f_funcobj;
    PyObject* f_globals;
    PyObject* f_builtins;
    PyObject* f_locals;
    PyFrameObject* frame_obj;
    SampledCodeUnit* instr_ptr;
    int stacktop;
    uint16_t return_offset;
    char owner;
};
#elif PY_VERSION_HEX >= 0x030C0000
struct SampledInterpreterFrame {  // 3.12
    PyCodeObject* f_code;
    SampledInterpreterFrame* previous;
    PyObject* f_funcobj;
    PyObject* f_globals;
    PyObject* f_builtins;
    PyObject* f_locals;
    PyFrameObject* frame_obj;
    SampledCodeUnit* prev_instr;
    int stacktop;
    uint16_t return_offset;
    char owner;
};
#elif PY_VERSION_HEX >= 0x030B0000
struct SampledInterpreterFrame {  // 3.11
    PyObject* f_func;
    PyObject* f_globals;
    PyObject* f_builtins;
    PyObject* f_locals;
    PyCodeObject* f_code;
    PyFrameObject* frame_obj;
    SampledInterpreterFrame* previous;
    SampledCodeUnit* prev_instr;
    int stacktop;
    bool is_entry;
    char owner;
};
#endif
inline constexpr char kFrameOwnedByGenerator = 1;
inline constexpr char kFrameOwnedByCStack = 3;  // 3.12+: the shim frame an eval-loop call starts with

// The calling thread's own thread state, or nullptr: a thread-specific-data load, safe in a
// signal handler (it is what the interpreter binds and clears for each thread).
inline PyThreadState* sampler_thread_state() { return PyGILState_GetThisThreadState(); }

// The kernel thread id of a thread state (3.9/3.10 keep only the pthread_t: the tid is what
// glibc's per-thread CPU clock id encodes).
inline long thread_native_id(PyThreadState* tstate) {
#if PY_VERSION_HEX >= 0x030B0000
    return static_cast<long>(tstate->native_thread_id);
#else
    clockid_t clock = 0;
    if (pthread_getcpuclockid(static_cast<pthread_t>(tstate->thread_id), &clock) != 0) {
        return 0;
    }
    return static_cast<long>(~(static_cast<int>(clock) >> 3));
#endif
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
// 3.11/3.12: _PyEval_EvalFrameDefault sets `tstate->cframe = &cframe` a few instructions before
// `cframe.current_frame = frame`, so a signal in between finds current_frame uninitialised
// (stack garbage: a walk from it crashed). Every frame reachable from a real current frame is
// sound, so only the first is checked: one in the thread's data stack must lie below the live
// top of its chunk (what is above is popped or garbage); anything else (a generator's frame in
// its object, 3.12's C-stack entry frame while a call returns) is read through
// process_vm_readv of this very process, which fails rather than faults on an unmapped
// address, and must be owned by a generator or the C stack, with a code object as its code.
inline bool sampled_read_self(const void* address, void* out, size_t size) {
    iovec local{out, size};
    iovec remote{const_cast<void*>(address), size};
    return syscall(SYS_process_vm_readv, getpid(), &local, 1ul, &remote, 1ul, 0ul) == static_cast<long>(size);
}

// The words a frame of `code` takes in the data stack.
inline int sampled_frame_words(const PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030C0000
    return code->co_framesize;
#else
    // 3.11 pushes co_nlocalsplus + co_stacksize + FRAME_SPECIALS_SIZE words, the specials being
    // the frame's fields before its localsplus array (this struct, pointer-aligned).
    return code->co_nlocalsplus + code->co_stacksize + static_cast<int>(sizeof(SampledInterpreterFrame) / sizeof(PyObject*));
#endif
}

// Frames lie end to end in a data stack chunk from its first word (the root chunk's is
// reserved): a stale pointer below the live top may point into the middle of a live frame (its
// value stack), so it is a frame only where one starts. The frames stepped over lie below it,
// complete (only the topmost can be half pushed, and a real current frame is never above it).
inline bool sampled_frame_starts_at(const _PyStackChunk* chunk, uintptr_t at) {
    auto start = reinterpret_cast<uintptr_t>(&chunk->data[chunk->previous ? 0 : 1]);
    while (start < at) {
        int words = sampled_frame_words(reinterpret_cast<const SampledInterpreterFrame*>(start)->f_code);
        if (words <= 0) {
            return false;
        }
        start += static_cast<uintptr_t>(words) * sizeof(PyObject*);
    }
    return start == at;
}

inline bool sampled_current_frame_plausible(PyThreadState* tstate, const SampledInterpreterFrame* frame) {
    auto at = reinterpret_cast<uintptr_t>(frame);
    if (at % alignof(SampledInterpreterFrame) != 0) {
        return false;
    }
    bool innermost = true;
    for (const _PyStackChunk* chunk = tstate->datastack_chunk; chunk; chunk = chunk->previous, innermost = false) {
        auto data = reinterpret_cast<uintptr_t>(chunk->data);
        auto end = reinterpret_cast<uintptr_t>(chunk) + chunk->size;
        if (at < data || at >= end) {
            continue;
        }
        auto live_top = innermost ? reinterpret_cast<uintptr_t>(tstate->datastack_top)
                                  : data + chunk->top * sizeof(PyObject*);
        return at + sizeof(SampledInterpreterFrame) <= live_top && sampled_frame_starts_at(chunk, at);
    }
    SampledInterpreterFrame copy;
    if (!sampled_read_self(frame, &copy, sizeof copy)) {
        return false;
    }
    if (copy.owner != kFrameOwnedByGenerator && copy.owner != kFrameOwnedByCStack) {
        return false;
    }
    PyObject object_header;
    return copy.f_code && sampled_read_self(copy.f_code, &object_header, sizeof object_header) &&
           Py_TYPE(&object_header) == &PyCode_Type;
}
#endif

// Walks the thread's Python frames, leaf first, into words: (code pointer | entry bit,
// instruction) per frame (instruction: 3.11+ the code-unit pointer, before that the byte
// offset). Plain loads only: async-signal-safe. Returns the number of frames written (at most
// `max`); `truncated` is set when frames were left out.
inline size_t walk_sampled_frames(PyThreadState* tstate, uint64_t* out, size_t max, bool& truncated) {
    size_t n = 0;
    truncated = false;
#if PY_VERSION_HEX >= 0x030B0000
#if PY_VERSION_HEX >= 0x030D0000
    auto* frame = reinterpret_cast<SampledInterpreterFrame*>(tstate->current_frame);
#else
    _PyCFrame* cframe = tstate->cframe;
    auto* frame = cframe ? reinterpret_cast<SampledInterpreterFrame*>(cframe->current_frame) : nullptr;
    if (frame && !sampled_current_frame_plausible(tstate, frame)) {
        return 0;  // the eval loop is installing its cframe: current_frame is not written yet
    }
    // A stale current_frame can still be a real frame: the one this eval-loop call is about to
    // run (the same address as the last call's at this depth), whose `previous` is not linked
    // yet, or an outer frame. So a first frame that has not started is not followed, and the
    // frame before this call's entry must be the calling eval loop's current frame.
    if (frame && frame->owner != kFrameOwnedByGenerator && frame->owner != kFrameOwnedByCStack &&
        frame->prev_instr < sampled_code_start(frame->f_code) + frame->f_code->_co_firsttraceable) {
        return 0;
    }
    const void* caller_frame = cframe && cframe->previous ? cframe->previous->current_frame : nullptr;
    bool entry_checked = !cframe || !cframe->previous;
#endif
    for (; frame; frame = frame->previous) {
        if (n == max) {
            truncated = true;
            break;
        }
#if PY_VERSION_HEX < 0x030D0000
        // 3.12: the C-stack shim frame starts the call; 3.11: the entry frame itself.
#if PY_VERSION_HEX >= 0x030C0000
        const bool call_entry = frame->owner == kFrameOwnedByCStack;
#else
        const bool call_entry = frame->is_entry;
#endif
        if (call_entry && !entry_checked) {
            if (frame->previous != caller_frame) {
                return 0;
            }
            entry_checked = true;
        }
#endif
#if PY_VERSION_HEX >= 0x030C0000
        if (frame->owner == kFrameOwnedByCStack) {
            if (n) {
                out[2 * (n - 1)] |= 1;  // the frame above it began this eval-loop call
            }
            continue;
        }
#endif
#if PY_VERSION_HEX >= 0x030D0000
        PyObject* executable = frame->f_executable;
        if (!executable || Py_TYPE(executable) != &PyCode_Type) {
            continue;
        }
        auto* code = reinterpret_cast<PyCodeObject*>(executable);
        SampledCodeUnit* instr = frame->instr_ptr;
#else
        PyCodeObject* code = frame->f_code;
        SampledCodeUnit* instr = frame->prev_instr;
        if (!code) {
            continue;
        }
#endif
        // Frames not yet past their first instruction (still being set up) are not running.
        if (frame->owner != kFrameOwnedByGenerator && instr < sampled_code_start(code) + code->_co_firsttraceable) {
            continue;
        }
        out[2 * n] = reinterpret_cast<uint64_t>(code);
#if PY_VERSION_HEX < 0x030C0000
        out[2 * n] |= frame->is_entry ? 1 : 0;
#endif
        out[2 * n + 1] = reinterpret_cast<uint64_t>(instr);
        ++n;
    }
#else
    for (PyFrameObject* frame = tstate->frame; frame; frame = frame->f_back) {
        if (n == max) {
            truncated = true;
            break;
        }
        // Every frame object is one eval-loop call on 3.9/3.10.
        out[2 * n] = reinterpret_cast<uint64_t>(frame->f_code) | 1;
        int lasti = frame->f_lasti;
#if PY_VERSION_HEX >= 0x030A0000
        lasti = lasti < 0 ? 0 : lasti * 2;  // 3.10 counts code units
#else
        lasti = lasti < 0 ? 0 : lasti;
#endif
        out[2 * n + 1] = static_cast<uint64_t>(lasti);
        ++n;
    }
#endif
    return n;
}

// The bytecode byte offset of a sampled instruction word (under the GIL, the code alive).
inline int sampled_offset(PyCodeObject* code, uint64_t instr) {
#if PY_VERSION_HEX >= 0x030B0000
    auto* unit = reinterpret_cast<SampledCodeUnit*>(instr);
    ptrdiff_t units = unit - sampled_code_start(code);
    if (units < 0) {
        return 0;
    }
    return static_cast<int>(units * static_cast<ptrdiff_t>(sizeof(SampledCodeUnit)));
#else
    (void)code;
    return static_cast<int>(instr);
#endif
}

// The code type's deallocator slot, which the sampler wraps to learn of code objects dying.
inline destructor* code_type_dealloc_slot() { return &PyCode_Type.tp_dealloc; }

}  // namespace etwtrace::compat
