// sampler_resolve.cpp - a thread's raw samples -> functions, lines and stack nodes.
//
// The signal handler records code object pointers it cannot keep alive (no refcounting in a
// handler). A code object can die between the sample and its resolution, and another can be
// allocated at the same address; a sample must then not be read as that other function. So
// the code type's deallocator is wrapped: it counts deaths (g_code_deaths, which each sample
// copies when taken) and, while sampling, logs the dying pointer with its death number. At
// resolution a pointer that died after its sample was taken is an unresolved frame
// ([freed code object], counted); one that died before was already reused by the live code
// object the sample saw. Deaths and resolution both happen under the GIL, so the log is
// cleared after every complete drain.
//
// Functions come from the shared FunctionRegistry (ids, qualified names, ignore()/include()
// filters); lines from PyCode_Addr2Line of the sampled instruction, cached per offset. Stacks
// are a prefix tree of (parent, frame, line) nodes shared by all threads, so a stack seen
// again costs one varint in the file.
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "python/function_registry.h"
#include "python/sampler_state.h"
#include "sampler/elf_symbols.h"
#include "sampler/kernel_symbols.h"

namespace etwtrace::py::sampling {

std::atomic<uint64_t> g_code_deaths{0};

namespace {

destructor g_original_code_dealloc = nullptr;
bool g_logging_deaths = false;
auto* g_deaths = new std::unordered_map<const void*, uint64_t>();

void (*g_drain_before_death)() = nullptr;
bool g_draining = false;

void code_dealloc(PyObject* code) {
    if (g_logging_deaths && g_drain_before_death && !g_draining) {
        // Resolve what is buffered while this code object is still alive: samples taken just
        // before a function's code is freed (a module's body at exit, exec'd code) keep their
        // names. Not reentrant: a code object freed during a drain is only logged.
        // The code object is resurrected for the drain (as slot_tp_finalize does): a lookup
        // that takes and drops a reference to it must not free it a second time.
        // The drain runs on the program's thread: the sampler's signal stays blocked meanwhile,
        // or the drain's time would be sampled and those samples drained at the next death (at
        // high rates a program calling exec() in a loop ran hundreds of times slower).
        SamplerSignalBlocked unsampled;
        g_draining = true;
        Py_SET_REFCNT(code, 1);
        {
            compat::SavedException saved;
            g_drain_before_death();
        }
        Py_SET_REFCNT(code, 0);
        g_draining = false;
    }
    uint64_t death = g_code_deaths.load(std::memory_order_relaxed) + 1;
    g_code_deaths.store(death, std::memory_order_release);
    if (g_logging_deaths) {
        (*g_deaths)[code] = death;
    }
    g_original_code_dealloc(code);
}

struct NodeKey {
    uint64_t parent;
    uint64_t frame;
    int32_t line;
    bool operator==(const NodeKey& o) const { return parent == o.parent && frame == o.frame && line == o.line; }
};
struct NodeHash {
    size_t operator()(const NodeKey& k) const {
        uint64_t h = k.parent * 0x9E3779B97F4A7C15ull ^ (k.frame + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull;
        return static_cast<size_t>(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(k.line)) << 17) ^ (h >> 29));
    }
};

auto* g_nodes = new std::unordered_map<NodeKey, uint64_t, NodeHash>();
auto* g_lines = new std::unordered_map<uint64_t, int32_t>();  // function id << 32 | offset -> line
auto* g_defined = new std::unordered_set<uint32_t>();  // FunctionIDs defined in this file
uint64_t g_next_node = 1;

// A sample resolved before the kernel's names were loaded (a drain that cannot wait: before a
// code object dies, before a mark): its user-space part is in the tree, and the sample names
// `leaf`, a node defined once its kernel frames (leaf first) can be named under `parent`.
struct DeferredKernelFrames {
    uint64_t leaf;
    uint64_t parent;
    std::vector<uint64_t> pcs;
};
auto* g_deferred = new std::vector<DeferredKernelFrames>();

constexpr uint32_t kUnresolvedFunction = 0;  // FunctionIDs from the registry start at 1

uint64_t intern(trace::ThreadBuffer& buffer, uint64_t parent, uint64_t frame, int32_t line) {
    auto [it, added] = g_nodes->try_emplace(NodeKey{parent, frame, line}, g_next_node);
    if (added) {
        ++g_next_node;
        buffer.stack_node(it->second, parent, frame, line);
    }
    return it->second;
}

// ---- native frames ----

struct NativeFrame {
    uint32_t symbol;  // NativeSymbol id
    bool eval_loop;   // in _PyEval_EvalFrameDefault: stands for the Python frames it runs
};

struct SymbolInfo {
    uint64_t address;
    std::string module, name;
    bool kernel;
};

constexpr uint64_t kKernelStart = 0xffff800000000000ull;

auto* g_native_frames = new std::unordered_map<uint64_t, NativeFrame>();  // lookup address -> frame
auto* g_symbol_ids = new std::unordered_map<uint64_t, uint32_t>();         // symbol start -> id
auto* g_symbols = new std::vector<SymbolInfo>();                           // by id
auto* g_defined_symbols = new std::unordered_set<uint32_t>();              // defined in this file

// Functions already named, by their address range: an interrupted instruction is a new address
// at almost every sample, and dladdr scans the module's whole dynamic symbol table (~20 us for
// libpython), which made the drain's resolution the largest of the sampler's costs at 1 kHz.
struct NamedRange {
    uint64_t end;
    NativeFrame frame;
};
auto* g_ranges = new std::map<uint64_t, NamedRange>();  // start -> the function's range

const NativeFrame* in_named_range(uint64_t address) {
    auto it = g_ranges->upper_bound(address);
    if (it == g_ranges->begin()) {
        return nullptr;
    }
    --it;
    return address < it->second.end ? &it->second.frame : nullptr;
}

// `pc` is a return address for every frame but the leaf: look up the call instruction.
NativeFrame native_frame(uint64_t pc, bool leaf) {
    uint64_t address = leaf ? pc : pc - 1;
    auto it = g_native_frames->find(address);
    if (it != g_native_frames->end()) {
        return it->second;
    }
    const bool kernel = pc >= kKernelStart;
    if (!kernel) {
        if (const NativeFrame* known = in_named_range(address)) {
            NativeFrame frame = *known;
            g_native_frames->emplace(address, frame);
            return frame;
        }
    }
    Dl_info info{};
    void* dynamic_symbol_entry = nullptr;  // dladdr1's ElfW(Sym)*
    uint64_t start = address;
    uint64_t size = 0;
    std::string module, name;
    if (kernel) {
        address = pc;  // the perf record's addresses are the instructions themselves
        module = "[kernel.kallsyms]";
        etwtrace::sampler::KernelSymbol symbol{};
        if (etwtrace::sampler::kernel_symbol(address, symbol)) {
            start = symbol.start;
            name = symbol.name;
        }
    } else if (dladdr1(reinterpret_cast<void*>(address), &info, &dynamic_symbol_entry,
                       RTLD_DL_SYMENT) != 0) {
        module = info.dli_fname ? info.dli_fname : "";
        if (info.dli_sname && info.dli_saddr) {
            name = info.dli_sname;
            start = reinterpret_cast<uint64_t>(info.dli_saddr);
            const auto* entry = static_cast<const ElfW(Sym)*>(dynamic_symbol_entry);
            size = entry ? entry->st_size : 0;
        } else {
            // Not a dynamic symbol: a static function, named by the file's .symtab where it
            // has one. (The main program's dli_fname is its argv[0], maybe relative.)
            const std::string file = module.empty() || module[0] != '/' ? "/proc/self/exe" : module;
            const auto& symbols =
                etwtrace::sampler::elf_symbols_of(file, reinterpret_cast<uint64_t>(info.dli_fbase));
            if (const auto* function = symbols.find(address)) {
                name = function->name;
                start = function->start + symbols.bias();
                size = function->size;
            }
        }
    }
    auto [sym, added] = g_symbol_ids->try_emplace(start, static_cast<uint32_t>(g_symbols->size()));
    if (added) {
        g_symbols->push_back(SymbolInfo{start, std::move(module), std::move(name), kernel});
    }
    static const uint64_t eval = reinterpret_cast<uint64_t>(compat::default_eval_frame());
    NativeFrame frame{sym->second, start == eval};
    g_native_frames->emplace(address, frame);
    if (size > 0 && address >= start && address - start < size) {
        g_ranges->emplace(start, NamedRange{start + size, frame});
    }
    return frame;
}

void define_symbol(trace::ThreadBuffer& buffer, uint32_t id) {
    if (g_defined_symbols->insert(id).second) {
        const SymbolInfo& s = (*g_symbols)[id];
        buffer.native_symbol(id, s.kernel, s.address, s.module, s.name);
    }
}

int32_t line_of(FunctionRecord* record, PyCodeObject* code, uint64_t instr) {
    int offset = compat::sampled_offset(code, instr);
    uint64_t key = static_cast<uint64_t>(record->id) << 32 | static_cast<uint32_t>(offset);
    auto it = g_lines->find(key);
    if (it != g_lines->end()) {
        return it->second;
    }
    int line = PyCode_Addr2Line(code, offset);
    if (line < 0) {
        line = record->first_line;  // no line (an artificial instruction): the function's
    }
    g_lines->emplace(key, line);
    return line;
}

}  // namespace

void set_drain_before_death(void (*drain)()) { g_drain_before_death = drain; }

bool install_code_death_hook() {
    if (g_original_code_dealloc) {
        return true;
    }
    destructor* slot = compat::code_type_dealloc_slot();
    g_original_code_dealloc = *slot;
    *slot = code_dealloc;
    return registry().initialise();
}

void resolver_reset() {
    g_deferred->clear();
    g_nodes->clear();
    g_lines->clear();
    g_defined->clear();
    g_defined_symbols->clear();
    g_deaths->clear();
    g_next_node = 1;
    g_logging_deaths = true;
}

void resolver_stop() {
    g_logging_deaths = false;
    g_deaths->clear();
}

void resolver_clear_deaths() { g_deaths->clear(); }

namespace {

// The function's definition, the first time this file mentions it.
void define(trace::ThreadBuffer& buffer, FunctionRecord* record) {
    if (g_defined->insert(record ? record->id : kUnresolvedFunction).second) {
        if (record) {
            buffer.function(record->id, record->is_python, record->first_line, 0, 0, record->filename(),
                            record->qualname, {}, trace::ThreadBuffer::Stamp::AsPrevious);
        } else {
            buffer.function(kUnresolvedFunction, true, 0, 0, 0, "", "[freed code object]", {},
                            trace::ThreadBuffer::Stamp::AsPrevious);
        }
    }
}

}  // namespace

namespace {

// One Python frame of a sample onto the stack at `node` (root first); returns the new node.
uint64_t python_frame(SampledThread& t, uint64_t node, uint64_t word, uint64_t instr, uint64_t deaths_then,
                      uint8_t& flags, Counters& counters) {
    auto* code = reinterpret_cast<PyCodeObject*>(word & ~etwtrace::sampler::kEntryFrame);
    auto death = g_deaths->find(code);
    if (death != g_deaths->end() && death->second > deaths_then) {
        flags |= format::kSampleUnresolved;
        ++counters.unresolved_frames;
        define(t.buffer, nullptr);
        return intern(t.buffer, node, uint64_t{kUnresolvedFunction} << 1, 0);
    }
    FunctionRecord* record = registry().lookup(code);
    if (!record) {
        return node;  // ignore()/include() or etwtrace's own code
    }
    define(t.buffer, record);
    return intern(t.buffer, node, uint64_t{record->id} << 1, line_of(record, code, instr));
}

std::atomic<PyThreadState*> g_hidden_tstate{nullptr};
std::atomic<size_t> g_hidden_calls{0};

}  // namespace

void set_hidden_eval_calls(PyThreadState* tstate, size_t calls) {
    g_hidden_calls.store(calls, std::memory_order_relaxed);
    g_hidden_tstate.store(tstate, std::memory_order_release);
}

namespace {
bool g_kernel_symbols_requested = false;

// The kernel frames of a sample lead its native part (leaf first).
size_t leading_kernel_frames(SampleRing& ring, uint64_t at, size_t count) {
    size_t n = 0;
    while (n < count && ring.at(at + n) >= kKernelStart) {
        ++n;
    }
    return n;
}

void name_deferred_kernel_frames(trace::ThreadBuffer& buffer) {
    for (const DeferredKernelFrames& d : *g_deferred) {
        uint64_t node = d.parent;
        for (size_t j = d.pcs.size(); j-- > 0;) {  // root first
            const NativeFrame frame = native_frame(d.pcs[j], false);
            define_symbol(buffer, frame.symbol);
            const uint64_t framed = uint64_t{frame.symbol} << 1 | 1;
            if (j > 0) {
                node = intern(buffer, node, framed, 0);
            } else {
                buffer.stack_node(d.leaf, node, framed, 0);  // the id the sample already names
            }
        }
    }
    g_deferred->clear();
}
}  // namespace

bool kernel_symbols_requested() { return g_kernel_symbols_requested; }

bool kernel_names_needed(SampledThread& t) {
    if (!g_deferred->empty()) {
        return true;
    }
    SampleRing& ring = t.ring;
    const uint64_t head = ring.head.load(std::memory_order_acquire);
    for (uint64_t at = ring.tail.load(std::memory_order_relaxed); at < head;) {
        const uint64_t header = ring.at(at);
        const size_t frames = static_cast<size_t>(header & 0xffff);
        const size_t native_count = static_cast<size_t>((header >> 24) & 0xff);
        const uint64_t native_at = at + etwtrace::sampler::kHeaderWords + 2 * frames;
        if (leading_kernel_frames(ring, native_at, native_count) > 0) {
            return true;
        }
        at = native_at + native_count;
    }
    return false;
}

bool drain_ring(SampledThread& t, uint8_t extra_flags, Counters& counters, KernelNames kernel_names) {
    using etwtrace::sampler::kEntryFrame;
    using etwtrace::sampler::kHeaderWords;
    // A code object freed while this drain runs (a reference dropped by a lookup, a collection
    // on 3.9-3.11) must not start another drain of the ring this one is consuming: it is logged.
    const bool was_draining = g_draining;
    g_draining = true;
    const bool kernel_names_loaded = etwtrace::sampler::kernel_symbols_loaded();
    if (kernel_names_loaded && !g_deferred->empty()) {
        name_deferred_kernel_frames(t.buffer);
    }
    SampleRing& ring = t.ring;
    uint64_t tail = ring.tail.load(std::memory_order_relaxed);
    const uint64_t head = ring.head.load(std::memory_order_acquire);
    std::vector<NativeFrame> natives;
    std::vector<size_t> group_starts;  // root-first indexes (leaf-first numbering) of entry frames
    while (tail < head) {
        const uint64_t header = ring.at(tail);
        const size_t frames = static_cast<size_t>(header & 0xffff);
        const size_t native_count = static_cast<size_t>((header >> 24) & 0xff);
        uint8_t flags = static_cast<uint8_t>(header >> 16) | extra_flags;
        const uint64_t taken = ring.at(tail + 1);
        const uint64_t deaths_then = ring.at(tail + 2);
        const uint64_t python_at = tail + kHeaderWords;
        const uint64_t native_at = python_at + 2 * frames;
        // Kernel frames whose names wait for /proc/kallsyms (loading it here would stall the
        // program): the sample waits in the ring, or, from a drain that cannot wait, its
        // kernel frames are named later.
        const size_t unnamed_kernel = kernel_names_loaded ? 0 : leading_kernel_frames(ring, native_at, native_count);
        if (unnamed_kernel > 0) {
            g_kernel_symbols_requested = true;
            if (kernel_names == KernelNames::WaitInRing) {
                break;  // this sample and those after it wait in the ring
            }
        }
        auto word = [&](size_t i) { return ring.at(python_at + 2 * i); };
        auto instr = [&](size_t i) { return ring.at(python_at + 2 * i + 1); };

        // Each _PyEval_EvalFrameDefault frame of the native stack stands for one group of
        // Python frames: an entry frame (the first of an eval-loop call) and the frames it
        // called inside that same call. Root first, the n-th eval frame is the n-th group.
        natives.clear();
        size_t evals = 0;
        for (size_t j = 0; j < native_count; ++j) {
            if (j < unnamed_kernel) {
                natives.push_back(NativeFrame{0, false});  // named later: see below
                continue;
            }
            // The first user-space address is the interrupted instruction, the others return addresses.
            const uint64_t pc = ring.at(native_at + j);
            const bool leaf = j == 0 || (ring.at(native_at + j - 1) >= kKernelStart && pc < kKernelStart);
            natives.push_back(native_frame(pc, leaf));
            evals += natives.back().eval_loop ? 1 : 0;
        }
        group_starts.clear();
        for (size_t i = frames; i-- > 0;) {
            if ((word(i) & kEntryFrame) || group_starts.empty()) {
                group_starts.push_back(i);
            }
        }
        // While the launcher's frames are set aside, its eval-loop calls (the outermost) have
        // no Python frames: skipped. (Samples taken before or after pair up without them.)
        const size_t hidden_calls = t.tstate == g_hidden_tstate.load(std::memory_order_acquire)
                                        ? g_hidden_calls.load(std::memory_order_relaxed)
                                        : 0;
        size_t skip_evals = 0;
        if (hidden_calls && evals == group_starts.size() + hidden_calls) {
            skip_evals = hidden_calls;
        }
        bool merge = native_count > 0 && evals == group_starts.size() + skip_evals &&
                     !(flags & format::kSampleTruncated);
        if (native_count > 0 && !merge) {
            flags |= format::kSampleUnmerged;
        }
        if (flags & format::kSampleUnmerged) {  // or the handler took no native stack to merge
            ++counters.unmerged;
        }
        uint64_t node = 0;
        if (merge) {
            size_t group = 0;
            for (size_t j = native_count; j-- > unnamed_kernel;) {
                if (!natives[j].eval_loop) {
                    define_symbol(t.buffer, natives[j].symbol);
                    node = intern(t.buffer, node, uint64_t{natives[j].symbol} << 1 | 1, 0);
                    continue;
                }
                if (skip_evals) {
                    --skip_evals;  // a launcher's call, root side
                    continue;
                }
                // Python frames group_starts[group] down to (excluding) the next group's start.
                size_t first = group_starts[group];
                size_t stop = group + 1 < group_starts.size() ? group_starts[group + 1] : static_cast<size_t>(-1);
                for (size_t i = first + 1; i-- > 0 && i != stop;) {
                    node = python_frame(t, node, word(i), instr(i), deaths_then, flags, counters);
                }
                ++group;
            }
        } else {
            for (size_t i = frames; i-- > 0;) {  // root first
                node = python_frame(t, node, word(i), instr(i), deaths_then, flags, counters);
            }
        }
        if (merge && unnamed_kernel > 0) {
            DeferredKernelFrames d{g_next_node++, node, {}};
            for (size_t j = 0; j < unnamed_kernel; ++j) {
                d.pcs.push_back(ring.at(native_at + j));
            }
            node = d.leaf;
            g_deferred->push_back(std::move(d));
        }
        if (flags & format::kSampleTruncated) {
            ++counters.truncated;
        }
        t.buffer.sample(taken, node, flags);
        ++counters.samples;
        tail = native_at + native_count;
    }
    ring.tail.store(tail, std::memory_order_release);
    counters.dropped += ring.dropped.exchange(0, std::memory_order_relaxed);
    g_draining = was_draining;
    return tail == head;
}

}  // namespace etwtrace::py::sampling
