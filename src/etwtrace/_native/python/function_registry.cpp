#include "python/function_registry.h"

#include <unordered_set>

#include <unordered_map>

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

// 3.9/3.10 code objects carry only a bare name; qualified names are rebuilt from the
// enclosing module's code: every nested code constant gets "<outer>.<name>", with
// ".<locals>" after functions, as the compiler does for __qualname__.
std::unordered_map<PyCodeObject*, std::string>& legacy_qualnames() {
    static auto* names = new std::unordered_map<PyCodeObject*, std::string>();
    return *names;
}

void index_nested_qualnames(PyCodeObject* code, const std::string& prefix, int depth) {
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
        legacy_qualnames().emplace(inner, qualname);
        // Functions (not class bodies) put "<locals>" in front of what they define.
        bool is_function = (inner->co_flags & CO_NEWLOCALS) != 0;
        index_nested_qualnames(inner, is_function ? qualname + ".<locals>" : qualname, depth + 1);
    }
}

// Functions and classes reachable from loaded modules, for modules whose body ran before
// tracing started: a function object knows its own __qualname__, and its nested code objects
// get "<qualname>.<locals>.<name>".
void index_function(PyObject* func) {
    if (!PyFunction_Check(func)) {
        return;
    }
    auto* code = reinterpret_cast<PyCodeObject*>(PyFunction_GET_CODE(func));
    std::string qualname = utf8(reinterpret_cast<PyFunctionObject*>(func)->func_qualname);
    if (qualname.empty() || !PyCode_Check(reinterpret_cast<PyObject*>(code))) {
        return;
    }
    legacy_qualnames()[code] = qualname;  // the function object is the authority
    index_nested_qualnames(code, qualname + ".<locals>", 0);
}

void index_namespace(PyObject* dict, int depth);

void index_value(PyObject* value, int depth) {
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

void index_namespace(PyObject* dict, int depth) {
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

void index_loaded_modules() {
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

// A remembered name still belongs to this code object (its address may have been reused).
bool qualname_matches(const std::string& qualname, const std::string& name) {
    return qualname == name ||
           (qualname.size() > name.size() && qualname.compare(qualname.size() - name.size(), name.size(), name) == 0 &&
            qualname[qualname.size() - name.size() - 1] == '.');
}

}  // namespace

FunctionRegistry* const g_registry = new FunctionRegistry();

const std::string FunctionRecord::kNoFile;

// Interned file names: never freed, like the records pointing at them. Called with the GIL.
void FunctionRecord::set_filename(std::string_view name) {
    static auto* names = new std::unordered_set<std::string>();
    filename_ = &*names->emplace(name).first;
}

bool FunctionRegistry::initialise() {
    if (extra_index_ >= 0) {
        return true;
    }
    extra_index_ = compat::request_code_extra_index(nullptr);
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

void FunctionRegistry::apply_filters(FunctionRecord& record) {
    record.generation = generation_;
    record.included = on_publish_ != nullptr && passes_filters(record.filename());
    record.traced_generation = record.included ? generation_ : 0;
    if (record.included && !record.published) {
        record.published = true;
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
        return name;
    }
    auto& names = legacy_qualnames();
    auto it = names.find(code);
    return it != names.end() && qualname_matches(it->second, name) ? it->second : name;
}

FunctionRecord* FunctionRegistry::lookup_slow(PyCodeObject* code, FunctionRecord* stale) {
    if (extra_index_ < 0) {
        return nullptr;
    }
    FunctionRecord* record = stale;
    compat::SavedException saved;  // the hooks run with exceptions in flight
    if (!record) {
        record = new FunctionRecord();
        record->id = next_id_++;
        record->is_python = true;
        record->first_line = compat::code_first_line(code);
        record->set_filename(utf8(compat::code_filename(code)));
        record->qualname = recover_qualname(code);
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
        record = new FunctionRecord();
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
