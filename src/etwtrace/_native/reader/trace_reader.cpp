#include "reader/trace_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace etwtrace::reader {

using format::Cursor;

int32_t Function::line_at(uint32_t offset) const {
    if (lines.empty()) {
        return line;
    }
    auto it = std::upper_bound(lines.begin(), lines.end(), offset,
                               [](uint32_t value, const std::pair<uint32_t, int32_t>& run) { return value < run.first; });
    if (it == lines.begin()) {
        return line;
    }
    return std::prev(it)->second;
}

std::vector<uint32_t> TraceData::stack(uint32_t node) const {
    std::vector<uint32_t> result;
    while (node != kNoNode && node < nodes.size() && result.size() <= nodes.size()) {
        result.push_back(nodes[node].function_id);
        node = nodes[node].parent;
    }
    return result;
}

namespace {

struct ThreadState {
    uint32_t index = 0;
    uint64_t next_seq = 0;
    uint32_t top = kNoNode;
};

struct SyncPoint {
    uint64_t ticks;
    uint64_t ns;
};

class Decoder {
public:
    Decoder(TraceData& out) : out_(out) {}

    void record_error(const char* what, size_t offset) {
        if (out_.error.empty()) {
            out_.error = std::string(what) + " at byte " + std::to_string(offset);
        }
    }

    ThreadState& thread(uint64_t tid) {
        auto [it, added] = threads_.try_emplace(tid);
        if (added) {
            it->second.index = static_cast<uint32_t>(out_.thread_ids.size());
            out_.thread_ids.push_back(tid);
        }
        return it->second;
    }

    // Returns false on malformed chunk contents (the rest of the chunk is skipped).
    bool chunk(Cursor c) {
        uint64_t tid = 0, seq = 0, ticks = 0;
        if (!c.varint(tid) || !c.varint(seq) || !c.varint(ticks)) {
            return false;
        }
        ThreadState& ts = thread(tid);
        if (seq != ts.next_seq) {
            out_.sequence_gaps += seq > ts.next_seq ? seq - ts.next_seq : 1;
        }
        ts.next_seq = seq + 1;
        ++out_.chunks;
        auto& events = out_.events;
        auto& nodes = out_.nodes;
        while (c.pos < c.end) {
            uint8_t tag = *c.pos++;
            uint64_t delta = 0;
            if (!c.varint(delta)) {
                return false;
            }
            ticks += delta;
            Event e;
            e.timestamp = ticks;
            e.thread = ts.index;
            switch (static_cast<format::EventTag>(tag)) {
            case format::EventTag::Push: {
                uint32_t offset = 0;
                if (!c.varint32(e.function_id) || !c.varint32(e.caller) || !c.varint32(offset)) {
                    return false;
                }
                e.kind = Kind::Push;
                e.caller_line = static_cast<int32_t>(offset);
                nodes.push_back(StackNode{ts.top, e.function_id});
                ts.top = static_cast<uint32_t>(nodes.size() - 1);
                e.stack = ts.top;
                break;
            }
            case format::EventTag::Pop: {
                if (!c.varint32(e.function_id)) {
                    return false;
                }
                e.kind = Kind::Pop;
                e.stack = ts.top;
                if (ts.top != kNoNode && nodes[ts.top].function_id == e.function_id) {
                    ts.top = nodes[ts.top].parent;
                } else {
                    ++out_.unmatched_pops;
                }
                break;
            }
            case format::EventTag::Function: {
                Function f;
                uint8_t flags = 0;
                uint64_t line = 0, runs = 0;
                std::string_view file, name;
                if (!c.varint32(f.id) || !c.u8(flags) || !c.varint(line) || !c.varint(f.begin) ||
                    !c.varint(f.end) || !c.string(file) || !c.string(name) || !c.varint(runs)) {
                    return false;
                }
                if (runs > c.remaining() / 2) {
                    return false;
                }
                f.is_python = (flags & format::kFunctionIsPython) != 0;
                // Lines are int32 in the writer: anything else is a corrupt record, and
                // checking each step keeps the running sum from overflowing.
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
                e.kind = Kind::Function;
                e.function_id = f.id;
                e.aux = static_cast<uint32_t>(out_.functions.size());
                e.stack = ts.top;
                out_.function_index.emplace(f.id, e.aux);
                out_.functions.push_back(std::move(f));
                break;
            }
            case format::EventTag::Mark: {
                uint8_t kind = 0;
                std::string_view text;
                if (!c.u8(kind) || kind > 3 || !c.string(text)) {
                    return false;
                }
                e.kind = Kind::Mark;
                e.mark_kind = kind;
                e.aux = static_cast<uint32_t>(out_.marks.size());
                e.stack = ts.top;
                out_.marks.emplace_back(text);
                break;
            }
            case format::EventTag::Thread: {
                uint8_t start = 0;
                if (!c.u8(start)) {
                    return false;
                }
                e.kind = start ? Kind::ThreadStart : Kind::ThreadStop;
                e.stack = ts.top;
                break;
            }
            default:
                return false;  // unknown event tags cannot be skipped: their size is unknown
            }
            events.push_back(e);
        }
        return true;
    }

    void finish(const ReadOptions& options) {
        // Ticks -> CLOCK_MONOTONIC ns, piecewise linear between sync points.
        const auto& h = out_.header;
        if (h.tick_kind == format::TickKind::Tsc) {
            std::vector<SyncPoint> syncs = syncs_;
            syncs.push_back({h.start_ticks, h.start_ns});
            std::sort(syncs.begin(), syncs.end(), [](const SyncPoint& a, const SyncPoint& b) { return a.ticks < b.ticks; });
            double nominal = 1e9 / static_cast<double>(h.ticks_per_second);
            std::vector<double> rate(syncs.size(), nominal);  // ns per tick after sync i
            for (size_t i = 0; i + 1 < syncs.size(); ++i) {
                uint64_t dt = syncs[i + 1].ticks - syncs[i].ticks;
                if (dt > h.ticks_per_second / 100 && syncs[i + 1].ns > syncs[i].ns) {  // >= 10 ms apart
                    rate[i] = static_cast<double>(syncs[i + 1].ns - syncs[i].ns) / static_cast<double>(dt);
                }
            }
            if (syncs.size() >= 2) {
                rate.back() = rate[syncs.size() - 2];
            }
            size_t i = 0;
            for (Event& e : out_.events) {
                uint64_t t = e.timestamp;
                // Consecutive events nearly always share a segment: test it before searching.
                bool inside = t >= syncs[i].ticks && (i + 1 == syncs.size() || t < syncs[i + 1].ticks);
                if (!inside) {
                    auto it = std::upper_bound(syncs.begin(), syncs.end(), t,
                                               [](uint64_t v, const SyncPoint& s) { return v < s.ticks; });
                    i = it == syncs.begin() ? 0 : static_cast<size_t>(it - syncs.begin()) - 1;
                }
                double offset = static_cast<double>(static_cast<int64_t>(t - syncs[i].ticks)) * rate[i];
                double ns = static_cast<double>(syncs[i].ns) + offset;
                // Clamped: damaged sync points must not overflow the conversion (found by fuzzing).
                e.timestamp = ns <= 0 ? 0 : ns >= 1.8e19 ? ~uint64_t{0} : static_cast<uint64_t>(ns);
            }
        }
        // CallerLine through the caller's line table (FunctionIDs are dense: index by id).
        uint32_t max_id = 0;
        for (const Function& f : out_.functions) {
            max_id = std::max(max_id, f.id);
        }
        std::vector<const Function*> by_id(std::min<size_t>(max_id + 1u, 1u << 24), nullptr);
        for (const Function& f : out_.functions) {
            if (f.id < by_id.size()) {
                by_id[f.id] = &f;
            }
        }
        for (Event& e : out_.events) {
            if (e.kind == Kind::Push) {
                const Function* f = e.caller < by_id.size() ? by_id[e.caller] : nullptr;
                uint32_t offset = static_cast<uint32_t>(e.caller_line);
                e.caller_line = f && f->is_python ? f->line_at(offset) : 0;
            }
        }
        if (options.sort) {
            std::stable_sort(out_.events.begin(), out_.events.end(),
                             [](const Event& a, const Event& b) { return a.timestamp < b.timestamp; });
        }
    }

    std::vector<SyncPoint> syncs_;

private:
    TraceData& out_;
    std::unordered_map<uint64_t, ThreadState> threads_;
};

}  // namespace

bool decode(const uint8_t* data, size_t size, TraceData& out, const ReadOptions& options) {
    out = TraceData();
    switch (format::decode_header(data, size, out.header)) {
    case format::HeaderStatus::Ok:
        break;
    case format::HeaderStatus::Truncated:
        out.error = "truncated header";
        out.truncated = true;
        return false;
    case format::HeaderStatus::BadMagic:
        out.error = "not an etwtrace trace file (bad magic)";
        return false;
    case format::HeaderStatus::UnsupportedVersion:
        out.error = "unsupported trace format version " + std::to_string(out.header.version_major);
        return false;
    case format::HeaderStatus::Malformed:
        out.error = "malformed header";
        return false;
    }
    out.python_version = std::string(out.header.python_version);
    out.header.python_version = out.python_version;
    // A rough reservation (events average ~5 bytes) avoids most regrowth.
    // Generous reservations (the smallest event is 3 bytes): untouched pages cost nothing,
    // regrowth copies everything.
    if (size > (size_t{1} << 20)) {  // small inputs grow cheaply; big ones must not regrow
        size_t estimate = std::min<size_t>(size / 3, size_t{1} << 26);
        out.events.reserve(estimate);
        out.nodes.reserve(estimate / 2);
    }
    Decoder decoder(out);
    Cursor c{data + out.header.header_size, data + size};
    while (c.pos < c.end) {
        size_t record_offset = static_cast<size_t>(c.pos - data);
        uint8_t type = 0;
        uint64_t payload = 0;
        if (!c.u8(type) || !c.varint(payload) || payload > c.remaining()) {
            out.truncated = true;
            break;
        }
        Cursor body{c.pos, c.pos + payload};
        c.pos += payload;
        switch (static_cast<format::RecordType>(type)) {
        case format::RecordType::Chunk:
            if (!decoder.chunk(body)) {
                decoder.record_error("malformed chunk", record_offset);
            }
            break;
        case format::RecordType::ClockSync: {
            uint64_t ticks = 0, ns = 0;
            if (body.varint(ticks) && body.varint(ns)) {
                decoder.syncs_.push_back({ticks, ns});
            } else {
                decoder.record_error("malformed clock sync", record_offset);
            }
            break;
        }
        case format::RecordType::Loss: {
            uint64_t tid = 0, lost = 0;
            if (body.varint(tid) && body.varint(lost)) {
                out.lost_events += lost;
            } else {
                decoder.record_error("malformed loss record", record_offset);
            }
            break;
        }
        case format::RecordType::End: {
            uint64_t chunks = 0, lost = 0, end_ns = 0;
            if (body.varint(chunks) && body.varint(lost) && body.varint(end_ns)) {
                out.complete = true;
                out.lost_events = std::max(out.lost_events, lost);
            } else {
                decoder.record_error("malformed end record", record_offset);
            }
            break;
        }
        default:
            break;  // unknown record types are skipped (forward compatibility)
        }
    }
    decoder.finish(options);
    return true;
}

bool read_file(const std::string& path, TraceData& out, const ReadOptions& options) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        out = TraceData();
        out.error = path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (fstat(fd, &st) < 0) {
        out.error = path + ": " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        return decode(nullptr, 0, out, options);
    }
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) {
        out = TraceData();
        out.error = path + ": " + std::strerror(errno);
        return false;
    }
    bool ok = decode(static_cast<const uint8_t*>(map), size, out, options);
    munmap(map, size);
    return ok;
}

}  // namespace etwtrace::reader
