// stack_mode.cpp - stack sampling: every Python function runs through its own native thunk.
//
// Without us, a native stack walk through CPython shows the same few interpreter functions
// for every Python call:
//     _PyEval_EvalFrameDefault <- _PyFunction_Vectorcall <- ... <- _PyEval_EvalFrameDefault
// With a PEP 523 eval-frame hook, each Python function's frames are evaluated through a thunk
// of its own (thunks/), whose address is published with the function's name (symbols/):
//     _PyEval_EvalFrameDefault <- py::b:app.py <- ... <- _PyEval_EvalFrameDefault <- py::a:app.py
// so perf's samples name the Python functions between the native frames.
//
// Hot path (per Python call): one co_extra read and a generation check (FunctionRegistry::
// lookup), then an indirect call into the thunk, which calls the default evaluator. The first
// call of a function allocates its thunk and publishes it (perf map, jitdump, USDT `function`).
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <ctime>
#include <pthread.h>
#include <string>

#include "platform/linux.h"
#include "probes/probes.h"
#include "python/compat.h"
#include "python/function_registry.h"
#include "python/process_hooks.h"
#include "python/tracer_mode.h"
#include "symbols/safe_file.h"
#include "symbols/symbol_writer.h"
#include "thunks/arena.h"
#include "thunks/stack_segments.h"
#include "thunks/thunk.h"

namespace etwtrace::py {
namespace {

using ThunkFunction = PyObject* (*)(PyThreadState*, compat::EvalFrame*, int, compat::EvalFrameFunction);

// Process-wide state. Never destroyed: thunks must outlive every frame that may return into
// them, including frames still running during interpreter shutdown.
struct StackState {
    thunks::ThunkArena* arena = nullptr;
    symbols::SymbolPublisher* publisher = nullptr;
    FunctionRegistry* registry = nullptr;
    compat::EvalFrameFunction previous = nullptr;
    compat::EvalFrameFunction evaluator = nullptr;  // what thunks call: the default evaluator
    bool enabled = false;
    bool fork_handlers = false;
};
StackState state;

// USDT `thread`: start the first time a thread runs Python under the hook while a tracer
// listens, stop when the thread exits (or tracing is disabled on it).
struct ThreadNote {
    bool started = false;
    uint64_t tid = 0;
    ~ThreadNote() {
        if (started) {
            probes::thread(tid, 0);
        }
    }
};
thread_local ThreadNote thread_note;

__attribute__((noinline)) void note_thread() {
    if (!thread_note.started) {
        thread_note.started = true;
        thread_note.tid = platform::thread_id();
        probes::thread(thread_note.tid, 1);
    }
}

// What perf is told about `record`'s thunk: CPython's naming, py::<qualname>:<filename>.
symbols::CodeSymbol code_symbol(const FunctionRecord& record) {
    symbols::CodeSymbol symbol;
    symbol.address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(record.thunk));
    symbol.size = static_cast<uint32_t>(thunks::kThunkSize);
    symbol.name = "py::" + record.qualname + ":" + record.filename();
    symbol.filename = record.filename();
    symbol.line = record.first_line;
    symbol.code = state.arena->published_code(record.thunk);
    return symbol;
}

// Gives `record` its thunk and publishes it. Returns nullptr if no thunk can be had (the
// function then runs untraced).
void* assign_thunk(FunctionRecord& record) {
    if (record.thunk != nullptr) {
        return record.thunk;
    }
    void* thunk = state.arena->allocate();
    if (thunk == nullptr) {
        return nullptr;
    }
    record.thunk = thunk;
    auto address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(thunk));
    state.publisher->publish(code_symbol(record));
    probes::function(record.id, address, address + thunks::kThunkSize, record.first_line,
                     record.filename().c_str(), record.qualname.c_str(), record.is_python ? 1 : 0);
    return thunk;
}

// ---- deep recursion ----------------------------------------------------------------------------
// Two costs a hooked call has that the same call, inlined by the eval loop, has not (3.11+):
// C stack (thunks/stack_segments.h) and, on 3.12/3.13, C recursion budget (compat.h,
// kEvalEntryCUnits). The budget is credited back only for calls untraced would have inlined:
// those made by the parent frame's own eval loop, with nothing charged in between. The parent's
// evaluation records the budget its body runs with (t_parent_body_budget); a child hooked while
// the budget still has that value was called with no charging C function between (a call
// through __call__, __init__, repr() or any C recursion check charged a unit and is not
// credited: untraced it costs the eval entry too). Calls from C functions that charge nothing
// (map(), sorted(key=...)) cannot be told apart from inlined calls and are credited.

thread_local int t_parent_body_budget __attribute__((tls_model("initial-exec"))) = INT_MIN;

class CRecursionCredit {
public:
    explicit CRecursionCredit(PyThreadState* tstate) : tstate_(tstate) {
        if constexpr (compat::kEvalEntryCUnits > 0) {
            saved_ = t_parent_body_budget;
            int budget = compat::c_recursion_remaining(tstate);
            credited_ = budget == saved_;
            if (credited_) {
                compat::add_c_recursion_remaining(tstate, compat::kEvalEntryCUnits);
            }
            // What this frame's body runs with, once the evaluator has charged its entry.
            t_parent_body_budget = credited_ ? budget : budget - compat::kEvalEntryCUnits;
        }
    }
    ~CRecursionCredit() {
        if constexpr (compat::kEvalEntryCUnits > 0) {
            if (credited_) {
                compat::add_c_recursion_remaining(tstate_, -compat::kEvalEntryCUnits);
            }
            t_parent_body_budget = saved_;
        }
    }
    CRecursionCredit(const CRecursionCredit&) = delete;
    CRecursionCredit& operator=(const CRecursionCredit&) = delete;

private:
    [[maybe_unused]] PyThreadState* tstate_;
    [[maybe_unused]] int saved_ = 0;
    [[maybe_unused]] bool credited_ = false;
};

struct SegmentCall {
    ThunkFunction thunk;  // nullptr: the evaluator itself (a function with no thunk)
    PyThreadState* tstate;
    compat::EvalFrame* frame;
    int throwflag;
    PyObject* result;
};

void run_segment_call(void* arg) {
    auto* call = static_cast<SegmentCall*>(arg);
    call->result = call->thunk ? call->thunk(call->tstate, call->frame, call->throwflag, state.evaluator)
                               : state.evaluator(call->tstate, call->frame, call->throwflag);
}

// Evaluates `frame` (through `thunk`, if not null) on this stack, or on a fresh segment when
// this one is nearly used up.
__attribute__((noinline)) PyObject* evaluate(ThunkFunction thunk, PyThreadState* tstate, compat::EvalFrame* frame,
                                             int throwflag) {
    CRecursionCredit credit(tstate);
    if (compat::kHookedCallsNeedStackCheck && !thunks::stack_has_room() && !thunks::stack_has_room_slow()) {
        SegmentCall call{thunk, tstate, frame, throwflag, nullptr};
        if (thunks::call_on_fresh_segment(&run_segment_call, &call)) {
            return call.result;
        }
        // No memory for a segment: go on here; the stack still has its reserve.
    }
    return thunk ? thunk(tstate, frame, throwflag, state.evaluator) : state.evaluator(tstate, frame, throwflag);
}

// Everything but the fast path: thread notes, first calls, functions not traced, low stack.
__attribute__((noinline)) PyObject* stack_eval_frame_slow(PyThreadState* tstate, compat::EvalFrame* frame,
                                                          int throwflag) {
    if (probes::thread_enabled()) {
        note_thread();
    }
    PyCodeObject* code = compat::frame_code(frame);
    if (code != nullptr) {
        FunctionRecord* record = state.registry->lookup(code);
        if (record != nullptr) {
            void* thunk = record->thunk;
            if (thunk == nullptr) {
                compat::SavedException saved;   // published earlier by the other mode
                thunk = assign_thunk(*record);
            }
            if (thunk != nullptr) {
                return evaluate(reinterpret_cast<ThunkFunction>(thunk), tstate, frame, throwflag);
            }
        }
    }
    return evaluate(nullptr, tstate, frame, throwflag);
}

// The hook. Its fast path makes no call but the one into the thunk: before 3.12 a tail call,
// so the thunk returns straight to the interpreter that called the hook; from 3.12 on the
// hook's frame stays, to give back the C recursion units it credited (CRecursionCredit).
PyObject* stack_eval_frame(PyThreadState* tstate, compat::EvalFrame* frame, int throwflag) {
    if (__builtin_expect(!probes::thread_enabled(), 1)) {
        PyCodeObject* code = compat::frame_code(frame);
        if (!compat::kFrameCodeCanBeNull || __builtin_expect(code != nullptr, 1)) {
            FunctionRecord* record = state.registry->lookup_cached(code);
            if (__builtin_expect(record != nullptr && record->thunk != nullptr, 1) &&
                (!compat::kHookedCallsNeedStackCheck || __builtin_expect(thunks::stack_has_room(), 1))) {
                CRecursionCredit credit(tstate);
                return reinterpret_cast<ThunkFunction>(record->thunk)(tstate, frame, throwflag, state.evaluator);
            }
        }
    }
    return stack_eval_frame_slow(tstate, frame, throwflag);
}

// ---- fork -------------------------------------------------------------------------------------
// The child must not write into the parent's files. pthread_atfork keeps the publisher's lock
// consistent across fork(); the publisher notices the new pid by itself on its next publish,
// and os.fork() children (the ones that go on running Python) re-publish at once, through
// os.register_at_fork, so every inherited thunk has a name in the child's own files.

void before_fork() {
    if (state.publisher) {
        state.publisher->lock();
    }
}
void after_fork() {
    if (state.publisher) {
        state.publisher->unlock();
    }
}

PyObject* after_fork_in_child(PyObject*, PyObject*) {
    if (state.enabled && state.publisher) {
        state.publisher->reopen_after_fork();
    }
    Py_RETURN_NONE;
}

PyMethodDef after_fork_def = {"_stack_mode_after_fork_in_child", after_fork_in_child, METH_NOARGS,
                              "Re-publishes etwtrace's thunks into the forked child's own files."};

bool install_fork_handlers() {
    if (state.fork_handlers) {
        return true;
    }
    if (pthread_atfork(before_fork, after_fork, after_fork) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "etwtrace: pthread_atfork failed");
        return false;
    }
    if (!register_after_fork_in_child(&after_fork_def)) {
        return false;
    }
    state.fork_handlers = true;
    return true;
}

// ---- the mode -------------------------------------------------------------------------------

uint64_t salt_seed() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (static_cast<uint64_t>(getpid()) * 0x9E3779B1u) ^ static_cast<uint64_t>(ts.tv_nsec) ^
           static_cast<uint64_t>(ts.tv_sec);
}

bool initialise_state() {
    if (state.arena != nullptr) {
        return true;
    }
    state.registry = &registry();
    state.evaluator = compat::default_eval_frame();
    state.arena = new thunks::ThunkArena(64 * 1024, salt_seed());
    state.publisher = new symbols::SymbolPublisher();
    state.publisher->set_source([](const std::function<void(const symbols::CodeSymbol&)>& emit) {
        // Live and pooled records (function_registry.h): every name a thunk still answers to.
        state.registry->for_each_with_thunk([&](const FunctionRecord& record) { emit(code_symbol(record)); });
    });
    state.publisher->add_writer(symbols::make_perf_map_writer("/tmp"));
    const thunks::UnwindInfo& unwind = thunks::thunk_unwind_info();
    symbols::CodeUnwind code_unwind;
    code_unwind.data = unwind.data;
    code_unwind.eh_frame_hdr_size = unwind.eh_frame_hdr_size;
    code_unwind.mapped_size = unwind.mapped_size;
    state.publisher->add_writer(symbols::make_jitdump_writer(symbols::jitdump_directory(), code_unwind));
    return true;
}

class StackMode final : public TracerMode {
public:
    const char* name() const override { return "stack"; }

    bool enable(PyObject* ignored, PyObject* include, PyObject* options) override {
        PyInterpreterState* interp = PyThreadState_Get()->interp;
        compat::EvalFrameFunction current = compat::get_eval_frame(interp);
        if (current != compat::default_eval_frame() && current != &stack_eval_frame) {
            PyErr_SetString(PyExc_RuntimeError,
                            "etwtrace: another frame-evaluation hook (PEP 523) is already installed, for "
                            "example by `python -X perf`, a debugger or another profiler; stack sampling "
                            "cannot be enabled over it");
            return false;
        }
        if (!initialise_state()) {
            return false;
        }
        std::string error;
        if (!state.publisher->open(&error)) {
            PyErr_Format(PyExc_OSError, "etwtrace: cannot publish symbols: %s", error.c_str());
            return false;
        }
        if (!install_fork_handlers()) {
            return false;
        }
        if (!state.registry->configure(ignored, include, options, [](FunctionRecord& record) { assign_thunk(record); })) {
            return false;
        }
        state.previous = current == &stack_eval_frame ? compat::default_eval_frame() : current;
        compat::set_eval_frame(interp, &stack_eval_frame);
        state.enabled = true;
        if (probes::thread_enabled()) {
            note_thread();
        }
        return true;
    }

    bool disable() override {
        if (!state.enabled) {
            return true;
        }
        PyInterpreterState* interp = PyThreadState_Get()->interp;
        if (compat::get_eval_frame(interp) == &stack_eval_frame) {
            compat::set_eval_frame(interp, state.previous);
        }
        state.registry->reset();
        state.enabled = false;
        if (thread_note.started) {
            probes::thread(thread_note.tid, 0);
            thread_note.started = false;
        }
        // Thunks stay mapped and published: frames running now return through them.
        return true;
    }

    bool write_mark(std::string_view text, MarkKind kind) override {
        probes::fire_mark(text, kind);
        return true;
    }

    PyObject* technical_info() override {
        size_t thunks = state.arena ? state.arena->thunk_count() : 0;
        size_t address_space = state.arena ? state.arena->mapped_bytes() : 0;
        size_t memory = state.arena ? state.arena->physical_bytes() : 0;
        std::string perf_map, jitdump;
        if (state.publisher && state.publisher->is_open()) {
            auto paths = state.publisher->paths();
            perf_map = paths.size() > 0 ? paths[0] : "";
            jitdump = paths.size() > 1 ? paths[1] : "";
        }
        // thunk_bytes: address space per thunk; thunk_address_space / thunk_memory: mapped so
        // far / physical memory behind it (chunks share one copy, thunks/arena.h).
        return Py_BuildValue("((sn)(sn)(sn)(sn)(ss)(ss))", "thunks", static_cast<Py_ssize_t>(thunks), "thunk_bytes",
                             static_cast<Py_ssize_t>(thunks::thunk_stride()), "thunk_address_space",
                             static_cast<Py_ssize_t>(address_space), "thunk_memory", static_cast<Py_ssize_t>(memory),
                             "perf_map", perf_map.c_str(), "jitdump", jitdump.c_str());
    }
};

}  // namespace

TracerMode& stack_mode() {
    static StackMode mode;
    return mode;
}

}  // namespace etwtrace::py
