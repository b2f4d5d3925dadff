// function_registry.h - one FunctionID per traced function, shared by both modes.
//
// A Python function is identified by its code object; the record is cached in the code
// object's co_extra slot so the hot path is one lookup. C functions (instrumented mode) are
// keyed by their PyMethodDef. Records are never freed: a FunctionID, and the thunk address a
// stack-sampling record owns, stay valid for the life of the process, even after disable(),
// because frames may still be running through them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "python/compat.h"

namespace etwtrace::py {

// One per traced function, for the life of the process. Kept small (72 bytes): file names are
// interned, because every function of a module shares one.
struct FunctionRecord {
    uint32_t id = 0;                 // FunctionID, 1-based, unique in the process
    uint32_t generation = 0;         // filter generation `included` was computed for
    uint32_t traced_generation = 0;  // == generation while included, else 0: one compare on hot paths
    int32_t first_line = 0;
    bool included = false;           // passes ignore()/include() in that generation
    bool published = false;          // PythonFunction already emitted (by the active mode)
    bool is_python = true;
    uint32_t thunk_size = 0;
    void* thunk = nullptr;           // stack sampling: the thunk entered for this function
    std::string qualname;            // UTF-8

    // UTF-8 source file; for C functions, the module name.
    const std::string& filename() const { return *filename_; }
    void set_filename(std::string_view name);

private:
    const std::string* filename_ = &kNoFile;
    static const std::string kNoFile;
};

// Called once per record the first time it is seen included in the current enable().
using PublishCallback = std::function<void(FunctionRecord&)>;

class FunctionRegistry {
public:
    // Starts a new filter generation: `ignored` is a set of file names to skip, `include` a
    // list of path prefixes (empty = everything). Both are borrowed and consulted live, so
    // ignore()/include() calls after enable() apply to functions not yet seen. `options` (the
    // enable() options dict, or nullptr) may hold "exclude_prefixes", a list of str: files
    // starting with any of them are never traced, whatever `include` says (etwtrace's own
    // package directory). Those are copied now.
    // Returns false with a Python exception set on failure.
    bool configure(PyObject* ignored, PyObject* include, PyObject* options, PublishCallback on_publish);
    void reset();  // disable(): forget the filters and callback, keep records

    // The record for a code object if it is traced now, else nullptr. Never raises.
    FunctionRecord* lookup(PyCodeObject* code) {
        // Hot path of both hooks: one co_extra read and a generation check. extra_index_ is -1
        // until initialise(), which the fast read treats as "no record".
        void* extra = compat::get_code_extra_fast(code, extra_index_);
        auto* record = static_cast<FunctionRecord*>(extra);
        if (record && record->generation == generation_) {
            return record->included ? record : nullptr;
        }
        return lookup_slow(code, record);
    }

    // The record for a code object if the cached answer is current and says "traced", else
    // nullptr: then call lookup(), which decides (and may publish). For hooks that want a fast
    // path with no call in it at all.
    FunctionRecord* lookup_cached(PyCodeObject* code) const {
        auto* record = static_cast<FunctionRecord*>(compat::get_code_extra_fast(code, extra_index_));
        return (record && record->traced_generation == generation_) ? record : nullptr;
    }

    // The record for a builtin/C function object (instrumented mode), or nullptr.
    FunctionRecord* lookup_cfunction(PyObject* func);

    uint32_t function_count() const { return next_id_ - 1; }

    // Must be called with the GIL held, once, before any lookup.
    bool initialise();

private:
    FunctionRecord* lookup_slow(PyCodeObject* code, FunctionRecord* stale);
    bool passes_filters(const std::string& filename);
    void apply_filters(FunctionRecord& record);
    std::string recover_qualname(PyCodeObject* code);

    Py_ssize_t extra_index_ = -1;
    uint32_t generation_ = 1;
    uint32_t next_id_ = 1;
    PyObject* ignored_ = nullptr;   // strong references while enabled
    PyObject* include_ = nullptr;
    std::vector<std::string> exclude_;  // UTF-8 prefixes
    PublishCallback on_publish_;
};

// The process's registry: created when the module loads, never destroyed (records outlive
// atexit). Inline, because both hooks' hot paths reach it on every event.
extern FunctionRegistry* const g_registry;
inline FunctionRegistry& registry() { return *g_registry; }

}  // namespace etwtrace::py
