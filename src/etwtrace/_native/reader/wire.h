// wire.h - the pieces of decoding a trace file (docs/trace-format.md) that the full reader
// (trace_reader.cpp) and the streaming aggregator (trace_aggregate.cpp) share, so both see
// exactly the same events, timestamps and damage. No Python.h.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>
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
