#include "python/function_registry.h"

#include <functional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace etwtrace::py {

namespace {

std::string utf8(PyObject* str) {
    if (!str || !PyUnicode_Check(str)) {
        return {};
    }
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(str, &size);
    if (!data) {
        PyErr_Clear();
        return {};
    }
    return std::string(data, static_cast<size_t>(size));
}

// C functions are keyed by their method definition, which outlives every bound instance.
std::unordered_map<const void*, FunctionRecord*>& cfunction_records() {
    static auto* records = new std::unordered_map<const void*, FunctionRecord*>();
    return *records;
}

// Hash of a definition: what a retired record must match to be taken back.
uint64_t definition_hash(const std::string& qualname, const std::string* filename, int first_line, uint32_t body_hash) {
    uint64_t h = std::hash<std::string>()(qualname);
    h ^= reinterpret_cast<uintptr_t>(filename) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h ^= (static_cast<uint64_t>(static_cast<uint32_t>(first_line)) << 32 | body_hash) + 0x9E3779B97F4A7C15ull +
         (h << 6) + (h >> 2);
    return h;
}

uint32_t line_table_hash(PyCodeObject* code) {
    PyObject* table = compat::code_line_table(code);
    if (!table || !PyBytes_Check(table)) {
        return 0;
    }
    std::string_view bytes(PyBytes_AS_STRING(table), static_cast<size_t>(PyBytes_GET_SIZE(table)));
    return static_cast<uint32_t>(std::hash<std::string_view>()(bytes));
}

// co_extra's free function: called by CPython, with the GIL, as a code object is destroyed.
void code_record_freed(void* extra) {
    if (extra) {
        registry().retire(static_cast<FunctionRecord*>(extra));
    }
}

}  // namespace

FunctionRegistry* const g_registry = new FunctionRegistry();

// ---- records: slabs, retirement, the pool -------------------------------------------------

FunctionRecord* FunctionRegistry::new_record() {
    if (!free_.empty()) {
        FunctionRecord* record = free_.back();
        free_.pop_back();
        *record = FunctionRecord();
        return record;
    }
    if (slab_used_ == slabs_.size() * kSlabRecords) {
        slabs_.push_back(new FunctionRecord[kSlabRecords]);
    }
    FunctionRecord* record = &slabs_[slab_used_ / kSlabRecords][slab_used_ % kSlabRecords];
    ++slab_used_;
    return record;
}

void FunctionRegistry::free_record(FunctionRecord* record) {
    *record = FunctionRecord();
    record->retired = true;  // skipped by for_each_with_thunk until handed out again
    free_.push_back(record);
}

void FunctionRegistry::retire(FunctionRecord* record) {
    if (record->retired) {
        return;
    }
    if (record->id == 0) {  // 3.9/3.10: a name noted for code that never ran
        free_record(record);
        return;
    }
    record->retired = true;
    if (pooled_ < kRetiredPoolSize) {
        retired_.emplace(definition_hash(record->qualname, &record->filename(), record->first_line, record->body_hash),
                         record);
        ++pooled_;
    } else if (!keep_retired_) {
        free_record(record);  // its thunk address is abandoned, never renamed
    }
}

FunctionRecord* FunctionRegistry::take_retired(const std::string& qualname, const std::string& filename,
                                               int first_line, uint32_t body_hash) {
    if (pooled_ == 0) {
        return nullptr;
    }
    // Interned file names compare by address; a file never seen has no retired record.
    FunctionRecord probe;
    probe.set_filename(filename);
    const std::string* file = &probe.filename();
    auto range = retired_.equal_range(definition_hash(qualname, file, first_line, body_hash));
    for (auto it = range.first; it != range.second; ++it) {
        FunctionRecord* record = it->second;
        if (record->qualname == qualname && &record->filename() == file && record->first_line == first_line &&
            record->body_hash == body_hash) {
            retired_.erase(it);
            --pooled_;
            record->retired = false;
            return record;
        }
    }
    return nullptr;
}

void FunctionRegistry::for_each_with_thunk(const std::function<void(const FunctionRecord&)>& fn) const {
    for (size_t i = 0; i < slab_used_; ++i) {
        const FunctionRecord& record = slabs_[i / kSlabRecords][i % kSlabRecords];
        if (record.thunk != nullptr) {
            fn(record);
        }
    }
}

// ---- 3.9/3.10 qualified names ---------------------------------------------------------------
// Their code objects carry only a bare name; qualified names are rebuilt from the enclosing
// module's code: every nested code constant gets "<outer>.<name>", with ".<locals>" after
// functions, as the compiler does for __qualname__. The name is noted in the code object's own
// record (made now, FunctionID given at its first lookup), so it dies with the code.

void FunctionRegistry::note_legacy_qualname(PyCodeObject* code, const std::string& qualname, bool authoritative) {
    auto* record = static_cast<FunctionRecord*>(compat::get_code_extra(code, extra_index_));
    if (record && (record->thunk != nullptr || record->id != 0 || !authoritative)) {
        return;  // already named, or named in public: keep it
    }
    if (!record) {
        record = new_record();
        if (!compat::set_code_extra(code, extra_index_, record)) {
            free_record(record);
            return;
        }
    }
    record->qualname = qualname;
}

void FunctionRegistry::index_nested_qualnames(PyCodeObject* code, const std::string& prefix, int depth) {
    if (depth > 64 || !code->co_consts || !PyTuple_Check(code->co_consts)) {
        return;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(code->co_consts);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyTuple_GET_ITEM(code->co_consts, i);
        if (!PyCode_Check(item)) {
            continue;
        }
        auto* inner = reinterpret_cast<PyCodeObject*>(item);
        std::string name = utf8(inner->co_name);
        std::string qualname = prefix.empty() ? name : prefix + "." + name;
        note_legacy_qualname(inner, qualname, false);
        // Functions (not class bodies) put "<locals>" in front of what they define.
        bool is_function = (inner->co_flags & CO_NEWLOCALS) != 0;
        index_nested_qualnames(inner, is_function ? qualname + ".<locals>" : qualname, depth + 1);
    }
}

// Functions and classes reachable from loaded modules, for modules whose body ran before
// tracing started: a function object knows its own __qualname__, and its nested code objects
// get "<qualname>.<locals>.<name>".
void FunctionRegistry::index_function(PyObject* func) {
    if (!PyFunction_Check(func)) {
        return;
    }
    auto* code = reinterpret_cast<PyCodeObject*>(PyFunction_GET_CODE(func));
    std::string qualname = utf8(reinterpret_cast<PyFunctionObject*>(func)->func_qualname);
    if (qualname.empty() || !PyCode_Check(reinterpret_cast<PyObject*>(code))) {
        return;
    }
    note_legacy_qualname(code, qualname, true);  // the function object is the authority
    index_nested_qualnames(code, qualname + ".<locals>", 0);
}

void FunctionRegistry::index_value(PyObject* value, int depth) {
    if (PyFunction_Check(value)) {
        index_function(value);
    } else if (PyType_Check(value) && PyType_HasFeature(reinterpret_cast<PyTypeObject*>(value), Py_TPFLAGS_HEAPTYPE)) {
        if (depth < 4) {
            index_namespace(reinterpret_cast<PyTypeObject*>(value)->tp_dict, depth + 1);
        }
    } else if (PyObject_TypeCheck(value, &PyStaticMethod_Type) || PyObject_TypeCheck(value, &PyClassMethod_Type)) {
        PyObject* func = PyObject_GetAttrString(value, "__func__");
        if (func) {
            index_function(func);
            Py_DECREF(func);
        } else {
            PyErr_Clear();
        }
    } else if (PyObject_TypeCheck(value, &PyProperty_Type)) {
        for (const char* accessor : {"fget", "fset", "fdel"}) {
            PyObject* func = PyObject_GetAttrString(value, accessor);
            if (func) {
                index_function(func);
                Py_DECREF(func);
            } else {
                PyErr_Clear();
            }
        }
    }
}

void FunctionRegistry::index_namespace(PyObject* dict, int depth) {
    if (!dict || !PyDict_Check(dict)) {
        return;
    }
    PyObject* values = PyDict_Values(dict);  // a snapshot: safe if lookups run code
    if (!values) {
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); ++i) {
        index_value(PyList_GET_ITEM(values, i), depth);
    }
    Py_DECREF(values);
}

void FunctionRegistry::index_loaded_modules() {
    PyObject* modules = PySys_GetObject("modules");  // borrowed
    if (!modules || !PyDict_Check(modules)) {
        return;
    }
    PyObject* list = PyDict_Values(modules);
    if (!list) {
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); ++i) {
        PyObject* module = PyList_GET_ITEM(list, i);
        if (PyModule_Check(module)) {
            index_namespace(PyModule_GetDict(module), 0);
        }
    }
    Py_DECREF(list);
}

const std::string FunctionRecord::kNoFile;

// Interned file names: never freed (a retired record may still point at one). Called with the GIL.
void FunctionRecord::set_filename(std::string_view name) {
    static auto* names = new std::unordered_set<std::string>();
    filename_ = &*names->emplace(name).first;
}

bool FunctionRegistry::initialise() {
    if (extra_index_ >= 0) {
        return true;
    }
    extra_index_ = compat::request_code_extra_index(&code_record_freed);
    if (extra_index_ < 0) {
        PyErr_SetString(PyExc_RuntimeError, "etwtrace: no co_extra slot is available");
        return false;
    }
    return true;
}

namespace {

// options["exclude_prefixes"]: a list or tuple of str (missing or None: none).
bool exclude_prefixes(PyObject* options, std::vector<std::string>& out) {
    PyObject* value = options && PyDict_Check(options) ? PyDict_GetItemString(options, "exclude_prefixes") : nullptr;
    if (!value || value == Py_None) {
        return true;
    }
    if (!PyList_Check(value) && !PyTuple_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "exclude_prefixes must be a list of str");
        return false;
    }
    PyObject* items = PySequence_Fast(value, "exclude_prefixes must be a list of str");
    if (!items) {
        return false;
    }
    bool ok = true;
    for (Py_ssize_t i = 0; ok && i < PySequence_Fast_GET_SIZE(items); ++i) {
        PyObject* item = PySequence_Fast_GET_ITEM(items, i);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "exclude_prefixes must be a list of str");
            ok = false;
        } else if (std::string prefix = utf8(item); !prefix.empty()) {
            out.push_back(std::move(prefix));
        }
    }
    Py_DECREF(items);
    return ok;
}

}  // namespace

bool FunctionRegistry::configure(PyObject* ignored, PyObject* include, PyObject* options, PublishCallback on_publish) {
    if (!initialise()) {
        return false;
    }
    std::vector<std::string> exclude;
    if (!exclude_prefixes(options, exclude)) {
        return false;
    }
    if (ignored && ignored != Py_None && !PyAnySet_Check(ignored)) {
        PyErr_SetString(PyExc_TypeError, "ignored files must be a set");
        return false;
    }
    if (include && include != Py_None && !PyList_Check(include)) {
        PyErr_SetString(PyExc_TypeError, "include prefixes must be a list");
        return false;
    }
    reset();
    ++generation_;
    if (ignored && ignored != Py_None) {
        Py_INCREF(ignored);
        ignored_ = ignored;
    }
    if (include && include != Py_None) {
        Py_INCREF(include);
        include_ = include;
    }
    exclude_ = std::move(exclude);
    on_publish_ = std::move(on_publish);
    if (!compat::code_has_qualname()) {
        // 3.9/3.10: learn qualified names of what is already loaded (see recover_qualname).
        index_loaded_modules();
    }
    return true;
}

void FunctionRegistry::reset() {
    Py_CLEAR(ignored_);
    Py_CLEAR(include_);
    exclude_.clear();
    on_publish_ = nullptr;
    ++generation_;
}

bool FunctionRegistry::passes_filters(const std::string& filename) {
    for (const std::string& prefix : exclude_) {
        if (filename.compare(0, prefix.size(), prefix) == 0) {
            return false;
        }
    }
    if (ignored_ && PySet_GET_SIZE(ignored_) > 0) {
        PyObject* key = PyUnicode_DecodeUTF8(filename.data(), static_cast<Py_ssize_t>(filename.size()), "surrogateescape");
        if (!key) {
            PyErr_Clear();
        } else {
            int found = PySet_Contains(ignored_, key);
            Py_DECREF(key);
            if (found < 0) {
                PyErr_Clear();
            } else if (found) {
                return false;
            }
        }
    }
    if (include_ && PyList_GET_SIZE(include_) > 0) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(include_); ++i) {
            std::string prefix = utf8(PyList_GET_ITEM(include_, i));
            if (!prefix.empty() && filename.compare(0, prefix.size(), prefix) == 0) {
                return true;
            }
        }
        return false;
    }
    return true;
}

// A generation is one enable(): each enable publishes the functions it sees afresh, so every
// trace file defines the functions it names (a retired record taken back in the same enable
// was published already).
void FunctionRegistry::apply_filters(FunctionRecord& record) {
    bool published = record.traced_generation == generation_;
    record.generation = generation_;
    record.included = on_publish_ != nullptr && passes_filters(record.filename());
    record.traced_generation = record.included ? generation_ : 0;
    if (record.included && !published) {
        on_publish_(record);
    }
}

std::string FunctionRegistry::recover_qualname(PyCodeObject* code) {
    if (compat::code_has_qualname()) {
        return utf8(compat::code_qualname(code));
    }
    std::string name = utf8(compat::code_name(code));
    if (name == "<module>") {
        index_nested_qualnames(code, "", 0);
    }
    return name;  // a name noted earlier is in the code's record already (lookup_slow)
}

FunctionRecord* FunctionRegistry::lookup_slow(PyCodeObject* code, FunctionRecord* stale) {
    if (extra_index_ < 0) {
        return nullptr;
    }
    FunctionRecord* record = stale;
    compat::SavedException saved;  // the hooks run with exceptions in flight
    if (!record || record->id == 0) {
        std::string qualname = record ? record->qualname : recover_qualname(code);
        std::string filename = utf8(compat::code_filename(code));
        int first_line = compat::code_first_line(code);
        uint32_t body_hash = line_table_hash(code);
        FunctionRecord* taken = take_retired(qualname, filename, first_line, body_hash);
        if (taken) {
            if (record) {
                free_record(record);  // the noted name: the retired record carries the same
            }
            record = taken;
        } else {
            if (!record) {
                record = new_record();
            }
            record->id = next_id_++;
            record->is_python = true;
            record->first_line = first_line;
            record->body_hash = body_hash;
            record->set_filename(filename);
            record->qualname = std::move(qualname);
        }
        if (!compat::set_code_extra(code, extra_index_, record)) {
            // Could not cache: keep the record anyway (ids must stay unique) but traced
            // functions then pay the slow path; this only happens when memory runs out.
        }
    }
    apply_filters(*record);
    return record->included ? record : nullptr;
}

FunctionRecord* FunctionRegistry::lookup_cfunction(PyObject* func) {
    if (!PyCFunction_Check(func)) {
        return nullptr;
    }
    auto* cfunc = reinterpret_cast<PyCFunctionObject*>(func);
    const void* key = cfunc->m_ml;
    auto& records = cfunction_records();
    auto it = records.find(key);
    FunctionRecord* record = nullptr;
    if (it != records.end()) {
        record = it->second;
        if (record->generation == generation_) {
            return record->included ? record : nullptr;
        }
    }
    compat::SavedException saved;
    if (!record) {
        record = new_record();
        record->id = next_id_++;
        record->is_python = false;
        std::string name = cfunc->m_ml->ml_name ? cfunc->m_ml->ml_name : "?";
        // Methods are named by their type ("str.join"), functions by their module ("zlib.compress").
        PyObject* self = cfunc->m_self;
        std::string owner;
        if (self && !PyModule_Check(self)) {
            owner = Py_TYPE(self)->tp_name;
        } else if (cfunc->m_module && PyUnicode_Check(cfunc->m_module)) {
            owner = utf8(cfunc->m_module);
        } else if (self && PyModule_Check(self)) {
            const char* mod = PyModule_GetName(self);
            if (mod) {
                owner = mod;
            } else {
                PyErr_Clear();
            }
        }
        record->set_filename(owner.empty() ? "builtins" : owner);
        record->qualname = name;
        records.emplace(key, record);
    }
    apply_filters(*record);
    return record->included ? record : nullptr;
}

}  // namespace etwtrace::py
