// function_registry.h - one FunctionID per traced function, shared by both modes.
//
// A Python function is identified by its code object; the record is cached in the code
// object's co_extra slot so the hot path is one lookup. C functions (instrumented mode) are
// keyed by their PyMethodDef.
//
// When a code object dies (the co_extra slot's free function), its record is retired:
//   * kept in a bounded pool of retired records (kRetiredPoolSize), from which a new code
//     object with the same definition (qualified name, file, first line and line table) takes
//     it back whole: its FunctionID, and in stack mode its thunk, whose published name (perf
//     map line, jitdump record) is then still exactly right. Code that is compiled again and
//     again (exec of the same source, dataclass and namedtuple methods, templates) costs
//     nothing more per copy;
//   * otherwise freed, its slot reused by the next record, unless instrumented mode ran in this
//     process (its per-thread stacks and pending definitions hold record pointers): then kept.
//     A freed record's thunk address is never given to another function, because the perf
//     map, unlike jitdump, has no time: one address, one name, for the whole process.
// A FunctionID names one definition for the life of the process.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "python/compat.h"

namespace etwtrace::py {

// One per traced function. Kept small (72 bytes, in slabs, no allocator overhead): file names
// are interned, because every function of a module shares one.
struct FunctionRecord {
    uint32_t id = 0;                 // FunctionID, 1-based, unique in the process
    uint32_t generation = 0;         // filter generation `included` was computed for
    uint32_t traced_generation = 0;  // == generation while included, else 0: one compare on hot paths
    int32_t first_line = 0;
    bool included = false;           // passes ignore()/include() in that generation
    bool is_python = true;
    bool retired = false;            // its code object died; in the pool or free
    uint32_t body_hash = 0;          // hash of the code's line table (matches retired records)
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

    // Calls fn(record) for every live or pooled Python record that has a thunk (stack mode's
    // symbol source for forked children).
    void for_each_with_thunk(const std::function<void(const FunctionRecord&)>& fn) const;

    // Instrumented mode holds record pointers beyond a call: from now on, retired records that
    // do not fit the pool are kept, not freed.
    void keep_retired_records() { keep_retired_ = true; }

    // Records in use (live or pooled) and records freed for reuse (technical info, tests).
    size_t records_in_use() const { return slab_used_ - free_.size(); }
    size_t records_pooled() const { return pooled_; }

    static constexpr size_t kRetiredPoolSize = 4096;

    uint32_t function_count() const { return next_id_ - 1; }

    // Must be called with the GIL held, once, before any lookup.
    bool initialise();

    // The co_extra free function's work: `record`'s code object is being destroyed.
    void retire(FunctionRecord* record);

private:
    FunctionRecord* lookup_slow(PyCodeObject* code, FunctionRecord* stale);
    FunctionRecord* new_record();
    void free_record(FunctionRecord* record);
    FunctionRecord* take_retired(const std::string& qualname, const std::string& filename, int first_line,
                                 uint32_t body_hash);
    void note_legacy_qualname(PyCodeObject* code, const std::string& qualname, bool authoritative);
    void index_nested_qualnames(PyCodeObject* code, const std::string& prefix, int depth);
    void index_function(PyObject* func);
    void index_namespace(PyObject* dict, int depth);
    void index_value(PyObject* value, int depth);
    void index_loaded_modules();
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
    // Records live in slabs of kSlabRecords, never returned to the allocator: a pointer to a
    // record is always a record. Freed ones are reused through free_.
    static constexpr size_t kSlabRecords = 1024;
    std::vector<FunctionRecord*> slabs_;
    size_t slab_used_ = 0;  // records handed out of the slabs, freed ones included
    std::vector<FunctionRecord*> free_;
    std::unordered_multimap<uint64_t, FunctionRecord*> retired_;  // the pool, by definition hash
    size_t pooled_ = 0;
    bool keep_retired_ = false;
};

// The process's registry: created when the module loads, never destroyed (records outlive
// atexit). Inline, because both hooks' hot paths reach it on every event.
extern FunctionRegistry* const g_registry;
inline FunctionRegistry& registry() { return *g_registry; }

}  // namespace etwtrace::py
