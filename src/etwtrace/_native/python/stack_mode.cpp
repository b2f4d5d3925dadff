// stack_mode.cpp - placeholder until this mode is implemented: enabling raises
// NotImplementedError rather than pretending to trace.
#include "python/tracer_mode.h"

namespace etwtrace::py {
namespace {

class StackMode final : public TracerMode {
public:
    const char* name() const override { return "stack"; }
    bool enable(PyObject*, PyObject*, PyObject*) override {
        PyErr_SetString(PyExc_NotImplementedError, "etwtrace: stack mode is not implemented yet");
        return false;
    }
    bool disable() override { return true; }
    bool write_mark(std::string_view, MarkKind) override { return true; }
    PyObject* technical_info() override { return PyTuple_New(0); }
};

}  // namespace

TracerMode& stack_mode() {
    static StackMode mode;
    return mode;
}

}  // namespace etwtrace::py
