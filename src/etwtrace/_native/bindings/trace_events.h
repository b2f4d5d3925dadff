// trace_events.h - what the two halves of etwtrace.read()'s native side share: the iterator
// over a trace file's events (trace_events.cpp) and the Event storage it makes (event_base.cpp).
#pragma once

#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bindings/bindings.h"
#include "reader/trace_stream.h"

namespace etwtrace::py::bindings::events {

using reader::Kind;

// ---- shared strings ------------------------------------------------------------------------

enum NameIndex { kPush, kPop, kFunction, kMark, kStackSample, kThread, kSampledProfile, kNames };
extern PyObject* g_names[kNames];
extern PyObject* g_info;
extern PyObject* g_start;
extern PyObject* g_stop;
extern PyObject* g_trace;     // "trace", the source
extern PyObject* g_minus_one;
extern PyObject* g_empty;     // ()
// Field names, in upstream's order.
extern PyObject *g_function_id, *g_caller, *g_caller_line, *g_mark, *g_thread_id, *g_begin, *g_end, *g_line,
    *g_file, *g_name, *g_is_python, *g_event, *g_period;
// A SampledProfile's "Event": the clock of its samples (g_sample_clocks[SamplerStats::source]).
extern PyObject* g_sample_clocks[3];

// Makes the strings above (once, at module import).
bool intern_strings();

inline PyObject* new_ref(PyObject* o) {
    Py_INCREF(o);
    return o;
}

// ---- stacks as tuples of Frames ------------------------------------------------------------

// The trees StackTuples builds tuples of: the stream's interned call stacks, keyed by FunctionID
// (frames made by frame(function_id)), and the sampler's prefix tree, keyed by frame and line
// (frames made by sample_frame(is_native, id, line)).
struct CallTree {
    const reader::TraceStream& stream;
    size_t node_count() const { return stream.node_count(); }
    uint32_t parent(uint32_t n) const { return stream.parent(n); }
    uint64_t key(uint32_t n) const { return stream.function_id(n); }
    static PyObject* make(PyObject* frame, uint64_t key) {
        return PyObject_CallFunction(frame, "I", static_cast<unsigned>(key));
    }
};
struct SampleTreeView {
    const reader::SampleTree& tree;
    size_t node_count() const { return tree.nodes.size(); }
    uint32_t parent(uint32_t n) const { return tree.nodes[n].parent; }
    uint64_t key(uint32_t n) const {
        return uint64_t{tree.nodes[n].frame} << 32 | static_cast<uint32_t>(tree.nodes[n].line);
    }
    static PyObject* make(PyObject* frame, uint64_t key) {
        const auto f = static_cast<uint32_t>(key >> 32);
        return PyObject_CallFunction(frame, "NIi", PyBool_FromLong(f & 1), static_cast<unsigned>(f >> 1),
                                     static_cast<int>(static_cast<int32_t>(static_cast<uint32_t>(key))));
    }
};

// One tuple per node of a Tree (above), leaf first, sharing one Frame per key. Tuples are
// cached up to a budget of frame references (deep, ever-changing stacks would otherwise grow
// it without end); beyond it they are built each time they are asked for.
template <typename Tree>
class StackTuples {
public:
    explicit StackTuples(PyObject* frame) : frame_(new_ref(frame)) {}
    ~StackTuples() {
        for (PyObject* t : tuples_) {
            Py_XDECREF(t);
        }
        for (auto& [id, f] : frames_) {
            Py_DECREF(f);
        }
        Py_DECREF(frame_);
    }

    // New reference, or nullptr with an exception set.
    PyObject* get(const Tree& stream, uint32_t node) {
        if (node == reader::kNoNode) {
            return new_ref(g_empty);
        }
        if (node < tuples_.size() && tuples_[node]) {
            return new_ref(tuples_[node]);
        }
        // The nodes up to the first one with a tuple, leaf first.
        std::vector<uint32_t> chain;
        uint32_t n = node;
        while (n != reader::kNoNode && !(n < tuples_.size() && tuples_[n]) && chain.size() <= stream.node_count()) {
            chain.push_back(n);
            n = stream.parent(n);
        }
        PyObject* base = n == reader::kNoNode ? g_empty : tuples_[n];
        const Py_ssize_t base_size = PyTuple_GET_SIZE(base);
        const bool cache = cached_ + chain.size() * (static_cast<size_t>(base_size) + chain.size()) <= kBudget;
        if (!cache) {
            PyObject* tuple = PyTuple_New(base_size + static_cast<Py_ssize_t>(chain.size()));
            for (size_t i = 0; tuple && i < chain.size(); ++i) {
                PyObject* f = frame(stream.key(chain[i]));
                if (!f) {
                    Py_CLEAR(tuple);
                    break;
                }
                PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), new_ref(f));
            }
            for (Py_ssize_t i = 0; tuple && i < base_size; ++i) {
                PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(chain.size()) + i, new_ref(PyTuple_GET_ITEM(base, i)));
            }
            return tuple;
        }
        if (tuples_.size() < stream.node_count()) {
            tuples_.resize(stream.node_count(), nullptr);
        }
        for (size_t k = chain.size(); k-- > 0;) {  // root side first: each tuple extends its parent's
            PyObject* f = frame(stream.key(chain[k]));
            if (!f) {
                return nullptr;
            }
            const Py_ssize_t size = PyTuple_GET_SIZE(base);
            PyObject* tuple = PyTuple_New(size + 1);
            if (!tuple) {
                return nullptr;
            }
            PyTuple_SET_ITEM(tuple, 0, new_ref(f));
            for (Py_ssize_t i = 0; i < size; ++i) {
                PyTuple_SET_ITEM(tuple, i + 1, new_ref(PyTuple_GET_ITEM(base, i)));
            }
            tuples_[chain[k]] = tuple;
            cached_ += static_cast<size_t>(size) + 1;
            base = tuple;
        }
        return new_ref(base);
    }

private:
    static constexpr size_t kBudget = size_t{1} << 21;  // frame references (16 MiB)

    // Borrowed (the cache keeps it), or nullptr with an exception set.
    PyObject* frame(uint64_t key) {
        auto it = frames_.find(key);
        if (it != frames_.end()) {
            return it->second;
        }
        PyObject* f = Tree::make(frame_, key);
        if (f) {
            frames_.emplace(key, f);
        }
        return f;
    }

    PyObject* frame_;
    std::unordered_map<uint64_t, PyObject*> frames_;
    std::vector<PyObject*> tuples_;
    size_t cached_ = 0;
};

// ---- the iterator ----------------------------------------------------------------------------

struct EventsState {
    reader::TraceStream stream;
    StackTuples<CallTree> stacks;
    StackTuples<SampleTreeView> sample_stacks;  // frames from sample_frame(is_native, id, line)
    std::vector<uint32_t> requested;  // per thread: a requested sample's node, for its PythonStackSample
    PyObject* pid;
    std::vector<PyObject*> thread_objects;  // per thread index
    std::unordered_set<uint64_t> thread_ids;
    bool all_threads = true;
    unsigned names = (1u << kNames) - 1;  // bit per NameIndex

    EventsState(std::shared_ptr<const reader::TraceIndex> index, PyObject* frame, PyObject* sample_frame)
        : stream(std::move(index)), stacks(frame), sample_stacks(sample_frame),
          requested(stream.index().thread_ids.size(), reader::kNoNode),
          pid(PyLong_FromUnsignedLong(stream.index().header.pid)) {}

    CallTree call_tree() const { return CallTree{stream}; }
    SampleTreeView sample_tree() const { return SampleTreeView{stream.index().samples}; }
    ~EventsState() {
        Py_XDECREF(pid);
        for (PyObject* t : thread_objects) {
            Py_XDECREF(t);
        }
    }
};

struct TraceEventsObject {
    PyObject_HEAD
    EventsState* state;
    PyTypeObject* event_type;
};

struct EventObject {
    PyObject_HEAD
    PyObject* name;
    PyObject* pid;
    PyObject* thread_id;
    PyObject* timestamp;
    PyObject* opcode;
    PyObject* cpu;
    PyObject* source;
    PyObject* python_stack;
    PyObject* fields;  // nullptr: built from the raw values below when first read
    PyObject* stack;   // nullptr: built by `owner` from `node` when first read
    PyObject* owner;   // the TraceEvents iterator of a streamed event
    PyObject* detail;  // a mark's text
    uint32_t function_id;
    uint32_t caller;
    int32_t caller_line;
    uint32_t function;  // a definition's index in the index's functions
    uint32_t node;
    uint8_t kind;       // reader::Kind of a streamed event, 0 for one made in Python
    uint8_t flags;      // Sample: its flags (format::kSample*)
    bool sampled;       // node is in the sampler's tree (a sample, or the stack of a requested one)
};

extern PyTypeObject EventBaseType;
// Fills EventBaseType (event_base.cpp); -1 with an exception set on failure.
int ready_event_base();

}  // namespace etwtrace::py::bindings::events
