// wire.h - the one decoder of trace files (docs/trace-format.md), which the full reader
// (trace_reader.cpp), the stream (trace_stream.cpp) and the aggregator (trace_aggregate.cpp)
// all use, so that they see exactly the same events, timestamps and damage. No Python.h.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <limits>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format/trace_format.h"
#include "reader/trace_reader.h"

namespace etwtrace::reader::wire {

using format::Cursor;

// Reads the file header; on failure sets `error` (and `truncated` for a short file).
inline bool header(const uint8_t* data, size_t size, format::FileHeader& out, std::string& error, bool& truncated) {
    switch (format::decode_header(data, size, out)) {
    case format::HeaderStatus::Ok:
        return true;
    case format::HeaderStatus::Truncated:
        error = "truncated header";
        truncated = true;
        return false;
    case format::HeaderStatus::BadMagic:
        error = "not an etwtrace trace file";
        return false;
    case format::HeaderStatus::UnsupportedVersion:
        error = "unsupported trace format version " + std::to_string(out.version_major);
        return false;
    case format::HeaderStatus::Malformed:
        error = "malformed header";
        return false;
    }
    return false;
}

// Calls visit(type, body, record_offset) for each record after the header, in file order.
// Returns false when the last record is cut short (a truncated tail).
template <typename Visit>
bool for_each_record(const uint8_t* data, size_t size, size_t header_size, Visit&& visit) {
    Cursor c{data + header_size, data + size};
    while (c.pos < c.end) {
        size_t record_offset = static_cast<size_t>(c.pos - data);
        uint8_t type = 0;
        uint64_t payload = 0;
        if (!c.u8(type) || !c.varint(payload) || payload > c.remaining()) {
            return false;
        }
        Cursor body{c.pos, c.pos + payload};
        c.pos += payload;
        visit(static_cast<format::RecordType>(type), body, record_offset);
    }
    return true;
}

struct SyncPoint {
    uint64_t ticks;
    uint64_t ns;
};

// The records besides chunks, parsed. Each returns false when the record is malformed.
inline bool clock_sync(Cursor body, SyncPoint& out) { return body.varint(out.ticks) && body.varint(out.ns); }
inline bool loss(Cursor body, uint64_t& lost) {
    uint64_t tid = 0;
    return body.varint(tid) && body.varint(lost);
}
inline bool end(Cursor body, uint64_t& lost) {
    uint64_t chunks = 0, end_ns = 0;
    return body.varint(chunks) && body.varint(lost) && body.varint(end_ns);
}
inline bool sampler_stats(Cursor body, SamplerStats& st) {
    return body.varint(st.samples) && body.varint(st.dropped) && body.varint(st.unresolved_frames) &&
           body.varint(st.truncated) && body.varint(st.period_ns) && body.u8(st.source) && body.varint(st.threads) &&
           body.varint(st.unmerged);
}

// The first damage in file order, whatever order a reader visits the records in.
class ErrorLog {
public:
    void add(const char* what, size_t offset) {
        if (offset < offset_) {
            offset_ = offset;
            what_ = what;
        }
    }
    void merge(const ErrorLog& other) {
        if (other.what_) {
            add(other.what_, other.offset_);
        }
    }
    // Into `out` (as "what at byte N"), unless it holds an error already.
    void report(std::string& out) const {
        if (what_ && out.empty()) {
            out = std::string(what_) + " at byte " + std::to_string(offset_);
        }
    }

private:
    size_t offset_ = std::numeric_limits<size_t>::max();
    const char* what_ = nullptr;
};

// A record other than a chunk: CLOCK_SYNC into `syncs`, LOSS, END and SAMPLER_STATS into `summary`; unknown
// record types are skipped (forward compatibility).
inline void meta_record(format::RecordType type, Cursor body, size_t offset, TraceSummary& summary,
                        std::vector<SyncPoint>& syncs, ErrorLog& errors) {
    switch (type) {
    case format::RecordType::ClockSync: {
        SyncPoint sync{};
        if (clock_sync(body, sync)) {
            syncs.push_back(sync);
        } else {
            errors.add("malformed clock sync", offset);
        }
        break;
    }
    case format::RecordType::Loss: {
        uint64_t lost = 0;
        if (loss(body, lost)) {
            summary.lost_events += lost;
        } else {
            errors.add("malformed loss record", offset);
        }
        break;
    }
    case format::RecordType::End: {
        uint64_t lost = 0;
        if (end(body, lost)) {
            summary.complete = true;
            summary.lost_events = std::max(summary.lost_events, lost);
        } else {
            errors.add("malformed end record", offset);
        }
        break;
    }
    case format::RecordType::SamplerStats: {
        SamplerStats stats;
        if (sampler_stats(body, stats)) {
            summary.sampler = stats;
            summary.sampler.present = true;
        } else {
            errors.add("malformed sampler stats record", offset);
        }
        break;
    }
    default:
        break;
    }
}

// The first varints of a CHUNK payload; `c` is left at its first event.
inline bool chunk_header(Cursor& c, uint64_t& tid, uint64_t& seq, uint64_t& base_ticks) {
    return c.varint(tid) && c.varint(seq) && c.varint(base_ticks);
}

// Chunks missing before `seq` of a thread whose next expected chunk is `next_seq` (and the
// new expectation).
inline uint64_t sequence_gap(uint64_t& next_seq, uint64_t seq) {
    uint64_t gap = seq == next_seq ? 0 : seq > next_seq ? seq - next_seq : 1;
    next_seq = seq + 1;
    return gap;
}

// One event of a chunk. `function` is filled for EventTag::Function (with its line table).
struct RawEvent {
    format::EventTag tag = format::EventTag::Push;
    uint32_t function_id = 0;    // push/pop: the function; Function: its id
    uint32_t caller = 0;         // push
    uint32_t caller_offset = 0;  // push: bytecode offset in the caller
    uint8_t value = 0;           // Mark: kind; Thread: 1 start, 0 stop
    std::string_view text;       // Mark: text; NativeSymbol: symbol (point into the file)
    std::string_view module;     // NativeSymbol: module
    uint64_t node = 0;           // StackNode: node; Sample: leaf node
    uint64_t parent = 0;         // StackNode: parent node; NativeSymbol: address
    uint64_t frame = 0;          // StackNode: frame
    int64_t line = 0;            // StackNode: line
};

// Decodes the event at `c`, advancing `ticks` by its delta. False on malformed input (the
// rest of the chunk cannot be read: event sizes are not stored).
__attribute__((always_inline)) inline bool event(Cursor& c, uint64_t& ticks, RawEvent& e, Function& function) {
    uint8_t tag = *c.pos++;
    uint64_t delta = 0;
    if (!c.varint(delta)) {
        return false;
    }
    ticks += delta;
    e.tag = static_cast<format::EventTag>(tag);
    switch (e.tag) {
    case format::EventTag::Push:
        return c.varint32(e.function_id) && c.varint32(e.caller) && c.varint32(e.caller_offset);
    case format::EventTag::Pop:
        return c.varint32(e.function_id);
    case format::EventTag::Function: {
        Function& f = function;
        f = Function();
        uint8_t flags = 0;
        uint64_t line = 0, runs = 0;
        std::string_view file, name;
        if (!c.varint32(f.id) || !c.u8(flags) || !c.varint(line) || !c.varint(f.begin) || !c.varint(f.end) ||
            !c.string(file) || !c.string(name) || !c.varint(runs)) {
            return false;
        }
        if (runs > c.remaining() / 2) {
            return false;
        }
        f.is_python = (flags & format::kFunctionIsPython) != 0;
        // Lines are int32 in the writer: anything else is a corrupt record, and checking each
        // step keeps the running sum from overflowing.
        const int64_t first_line = format::unzigzag(line);
        if (first_line < INT32_MIN || first_line > INT32_MAX) {
            return false;
        }
        f.line = static_cast<int32_t>(first_line);
        f.source_file = file;
        f.name = name;
        f.lines.reserve(static_cast<size_t>(runs));
        uint64_t offset = 0;
        int64_t run_line = f.line;
        for (uint64_t i = 0; i < runs; ++i) {
            uint64_t d_offset = 0, d_line = 0;
            if (!c.varint(d_offset) || !c.varint(d_line)) {
                return false;
            }
            offset += d_offset;
            const int64_t d = format::unzigzag(d_line);
            if (d < 2 * static_cast<int64_t>(INT32_MIN) || d > 2 * static_cast<int64_t>(INT32_MAX)) {
                return false;
            }
            run_line += d;
            if (run_line < INT32_MIN || run_line > INT32_MAX) {
                return false;
            }
            f.lines.emplace_back(static_cast<uint32_t>(offset), static_cast<int32_t>(run_line));
        }
        e.function_id = f.id;
        return true;
    }
    case format::EventTag::Mark:
        return c.u8(e.value) && e.value <= 3 && c.string(e.text);
    case format::EventTag::Thread:
        return c.u8(e.value);
    case format::EventTag::StackNode: {
        uint64_t line = 0;
        if (!c.varint(e.node) || !c.varint(e.parent) || !c.varint(e.frame) || !c.varint(line)) {
            return false;
        }
        e.line = format::unzigzag(line);
        return e.node != 0 && e.line >= INT32_MIN && e.line <= INT32_MAX;
    }
    case format::EventTag::NativeSymbol:
        return c.varint32(e.function_id) && c.u8(e.value) && c.varint(e.parent) && c.string(e.module) &&
               c.string(e.text);
    case format::EventTag::Sample:
        return c.varint(e.node) && c.u8(e.value);
    }
    return false;  // unknown event tags cannot be skipped: their size is unknown
}

// Decodes a whole CHUNK payload: its header (counted in summary.chunks, sequence gaps in
// summary.sequence_gaps, the thread's state found by thread_of(tid), which has a `next_seq`),
// then on_event(thread state, ticks, raw event) for each event, in order. Returns false on
// malformed contents (on_event returning false stops the chunk the same way); the events
// before the damage have been passed on.
template <typename ThreadOf, typename OnEvent>
bool decode_chunk(Cursor c, TraceSummary& summary, Function& function, ThreadOf&& thread_of, OnEvent&& on_event) {
    uint64_t tid = 0, seq = 0, ticks = 0;
    if (!chunk_header(c, tid, seq, ticks)) {
        return false;
    }
    auto& thread = thread_of(tid);
    summary.sequence_gaps += sequence_gap(thread.next_seq, seq);
    ++summary.chunks;
    RawEvent raw;
    while (c.pos < c.end) {
        if (!event(c, ticks, raw, function) || !on_event(thread, ticks, raw)) {
            return false;
        }
    }
    return true;
}

// Builds a SampleTree from a file's StackNode and NativeSymbol events and the node ids its
// samples name, seen in file order. A node is defined before its uses in file order but not
// necessarily in the same chunk, and readers may see chunks out of file order (the stream
// merges threads by time): so nodes resolve after the whole file, at finish(), as the
// format says (docs/trace-format.md). Uses of ids still undefined are counted at finish.
class SampleTreeBuilder {
public:
    explicit SampleTreeBuilder(SampleTree& out) : out_(out) {}

    void node(const RawEvent& raw) {  // EventTag::StackNode
        // Parents hold file node ids until finish() maps them to indexes.
        out_.index[raw.node] = static_cast<uint32_t>(out_.nodes.size());
        parent_ids_.push_back(raw.parent);
        out_.nodes.push_back(SampleNode{kNoNode, static_cast<uint32_t>(raw.frame), static_cast<int32_t>(raw.line)});
        pending_.erase(raw.node);
    }
    void symbol(const RawEvent& raw) {  // EventTag::NativeSymbol
        out_.symbols.push_back(NativeSymbol{raw.function_id, (raw.value & format::kSymbolIsKernel) != 0, raw.parent,
                                            std::string(raw.module), std::string(raw.text)});
    }
    // A sample names node `id` (EventTag::Sample): uses not defined by the end are counted.
    void use(uint64_t id) {
        if (id && !out_.index.count(id)) {
            ++pending_[id];
        }
    }
    void finish() {
        for (size_t i = 0; i < out_.nodes.size(); ++i) {
            const uint64_t id = parent_ids_[i];
            uint32_t parent = out_.node(id);
            if (id && parent == kNoNode) {
                ++out_.unknown_nodes;
            }
            // Parents are defined before their children: a later index would be a cycle.
            out_.nodes[i].parent = parent < i ? parent : kNoNode;
        }
        for (const auto& [id, uses] : pending_) {
            out_.unknown_nodes += uses;
        }
        pending_.clear();
        parent_ids_ = {};
    }

private:
    SampleTree& out_;
    std::vector<uint64_t> parent_ids_;
    std::unordered_map<uint64_t, uint64_t> pending_;  // id -> uses before any definition
};

// (parent key, FunctionID) -> node index: open addressing, linear probing. One multiply and,
// usually, one cache line per push: the hot lookup of every reader that interns stacks.
// Keys must not be ~0.
class NodeTable {
public:
    NodeTable() { rehash(1024); }

    // The node for `key`, or `fresh` after inserting it.
    uint32_t find_or_insert(uint64_t key, uint32_t fresh) {
        size_t i = slot(key);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) {
                return values_[i];
            }
            i = (i + 1) & mask_;
        }
        keys_[i] = key;
        values_[i] = fresh;
        if (++size_ * 2 > keys_.size()) {
            rehash(keys_.size() * 2);
        }
        return fresh;
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};

    size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }

    void rehash(size_t capacity) {
        std::vector<uint64_t> keys(capacity, kEmpty);
        std::vector<uint32_t> values(capacity);
        keys.swap(keys_);
        values.swap(values_);
        mask_ = capacity - 1;
        shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
        for (size_t j = 0; j < keys.size(); ++j) {
            if (keys[j] != kEmpty) {
                size_t i = slot(keys[j]);
                while (keys_[i] != kEmpty) {
                    i = (i + 1) & mask_;
                }
                keys_[i] = keys[j];
                values_[i] = values[j];
            }
        }
    }

    std::vector<uint64_t> keys_;
    std::vector<uint32_t> values_;
    size_t mask_ = 0;
    unsigned shift_ = 0;
    size_t size_ = 0;
};

// FunctionID -> the function's line table, for CallerLine: dense ids (function_registry.h
// numbers them from 1) in an array, a damaged file's huge ids in a map. The last definition of
// an id wins.
class FunctionsById {
public:
    explicit FunctionsById(const std::vector<Function>& functions) {
        uint32_t max_id = 0;
        for (const Function& f : functions) {
            max_id = std::max(max_id, f.id);
        }
        dense_.assign(std::min<size_t>(size_t{max_id} + 1, kDense), nullptr);
        for (const Function& f : functions) {
            if (f.id < dense_.size()) {
                dense_[f.id] = &f;
            } else {
                sparse_[f.id] = &f;
            }
        }
    }
    const Function* find(uint32_t id) const {
        if (id < dense_.size()) {
            return dense_[id];
        }
        auto it = sparse_.find(id);
        return it == sparse_.end() ? nullptr : it->second;
    }
    // The source line of a push from `caller` at bytecode `offset` (0 unless Python code).
    int32_t caller_line(uint32_t caller, uint32_t offset) const {
        const Function* f = find(caller);
        return f && f->is_python ? f->line_at(offset) : 0;
    }

private:
    static constexpr size_t kDense = size_t{1} << 20;
    std::vector<const Function*> dense_;
    std::unordered_map<uint32_t, const Function*> sparse_;
};

// Ticks -> CLOCK_MONOTONIC ns, piecewise linear between the sync points (the header's and
// every CLOCK_SYNC record's); beyond the last one at the last segment's rate, or the nominal
// rate when there is only one point. Needs every sync point of the file up front.
class TickClock {
public:
    TickClock(const format::FileHeader& h, std::vector<SyncPoint> syncs) : tsc_(h.tick_kind == format::TickKind::Tsc) {
        if (!tsc_) {
            return;
        }
        syncs_ = std::move(syncs);
        syncs_.push_back({h.start_ticks, h.start_ns});
        std::sort(syncs_.begin(), syncs_.end(), [](const SyncPoint& a, const SyncPoint& b) { return a.ticks < b.ticks; });
        double nominal = 1e9 / static_cast<double>(h.ticks_per_second);
        rate_.assign(syncs_.size(), nominal);  // ns per tick after sync i
        for (size_t i = 0; i + 1 < syncs_.size(); ++i) {
            uint64_t dt = syncs_[i + 1].ticks - syncs_[i].ticks;
            if (dt > h.ticks_per_second / 100 && syncs_[i + 1].ns > syncs_[i].ns) {  // >= 10 ms apart
                rate_[i] = static_cast<double>(syncs_[i + 1].ns - syncs_[i].ns) / static_cast<double>(dt);
            }
        }
        if (syncs_.size() >= 2) {
            rate_.back() = rate_[syncs_.size() - 2];
        }
    }

    // `segment` is the caller's cursor (start at 0): consecutive ticks nearly always share a
    // segment, so it is tested before searching.
    uint64_t ns(uint64_t t, size_t& segment) const {
        if (!tsc_) {
            return t;  // ticks are nanoseconds
        }
        size_t i = segment;
        bool inside = i < syncs_.size() && t >= syncs_[i].ticks && (i + 1 == syncs_.size() || t < syncs_[i + 1].ticks);
        if (!inside) {
            auto it = std::upper_bound(syncs_.begin(), syncs_.end(), t,
                                       [](uint64_t v, const SyncPoint& s) { return v < s.ticks; });
            i = it == syncs_.begin() ? 0 : static_cast<size_t>(it - syncs_.begin()) - 1;
            segment = i;
        }
        double offset = static_cast<double>(static_cast<int64_t>(t - syncs_[i].ticks)) * rate_[i];
        double ns = static_cast<double>(syncs_[i].ns) + offset;
        // Clamped: damaged sync points must not overflow the conversion (found by fuzzing).
        return ns <= 0 ? 0 : ns >= 1.8e19 ? ~uint64_t{0} : static_cast<uint64_t>(ns);
    }

private:
    bool tsc_;
    std::vector<SyncPoint> syncs_;
    std::vector<double> rate_;
};

}  // namespace etwtrace::reader::wire
