#include "reader/trace_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "reader/wire.h"

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
        if (!wire::chunk_header(c, tid, seq, ticks)) {
            return false;
        }
        ThreadState& ts = thread(tid);
        out_.sequence_gaps += wire::sequence_gap(ts.next_seq, seq);
        ++out_.chunks;
        auto& events = out_.events;
        auto& nodes = out_.nodes;
        wire::RawEvent raw;
        while (c.pos < c.end) {
            if (!wire::event(c, ticks, raw, function_)) {
                return false;
            }
            Event e;
            e.timestamp = ticks;
            e.thread = ts.index;
            e.function_id = raw.function_id;
            switch (raw.tag) {
            case format::EventTag::Push:
                e.kind = Kind::Push;
                e.caller = raw.caller;
                e.caller_line = static_cast<int32_t>(raw.caller_offset);
                nodes.push_back(StackNode{ts.top, e.function_id});
                ts.top = static_cast<uint32_t>(nodes.size() - 1);
                e.stack = ts.top;
                break;
            case format::EventTag::Pop:
                e.kind = Kind::Pop;
                e.stack = ts.top;
                if (ts.top != kNoNode && nodes[ts.top].function_id == e.function_id) {
                    ts.top = nodes[ts.top].parent;
                } else {
                    ++out_.unmatched_pops;
                }
                break;
            case format::EventTag::Function:
                e.kind = Kind::Function;
                e.aux = static_cast<uint32_t>(out_.functions.size());
                e.stack = ts.top;
                out_.function_index.emplace(function_.id, e.aux);
                out_.functions.push_back(std::move(function_));
                break;
            case format::EventTag::Mark:
                e.kind = Kind::Mark;
                e.mark_kind = raw.value;
                e.aux = static_cast<uint32_t>(out_.marks.size());
                e.stack = ts.top;
                out_.marks.emplace_back(raw.text);
                break;
            case format::EventTag::Thread:
                e.kind = raw.value ? Kind::ThreadStart : Kind::ThreadStop;
                e.stack = ts.top;
                break;
            case format::EventTag::StackNode: {
                // Parents hold file node ids until finish() maps them to indexes.
                node_index_[raw.node] = static_cast<uint32_t>(out_.sample_nodes.size());
                node_parent_ids_.push_back(raw.parent);
                out_.sample_nodes.push_back(reader::SampleNode{kNoNode, static_cast<uint32_t>(raw.frame),
                                                               static_cast<int32_t>(raw.line)});
                continue;
            }
            case format::EventTag::NativeSymbol:
                out_.symbols.push_back(NativeSymbol{raw.function_id, (raw.value & format::kSymbolIsKernel) != 0,
                                                    raw.parent, std::string(raw.module), std::string(raw.text)});
                continue;
            case format::EventTag::Sample:
                e.kind = Kind::Sample;
                e.mark_kind = raw.value;
                e.function_id = 0;
                sample_node_ids_.push_back(raw.node);
                e.stack = static_cast<uint32_t>(sample_node_ids_.size() - 1);  // until finish()
                break;
            }
            events.push_back(e);
        }
        return true;
    }

    void finish_samples() {
        auto index_of = [&](uint64_t id) -> uint32_t {
            if (id == 0) {
                return kNoNode;
            }
            auto it = node_index_.find(id);
            if (it == node_index_.end()) {
                ++out_.unknown_sample_nodes;
                return kNoNode;
            }
            return it->second;
        };
        for (size_t i = 0; i < out_.sample_nodes.size(); ++i) {
            uint32_t parent = index_of(node_parent_ids_[i]);
            // Parents are defined before their children: a later index would be a cycle.
            out_.sample_nodes[i].parent = parent < i ? parent : kNoNode;
        }
        for (Event& e : out_.events) {
            if (e.kind == Kind::Sample) {
                e.stack = index_of(sample_node_ids_[e.stack]);
            }
        }
    }

    void finish(const ReadOptions& options) {
        finish_samples();
        const wire::TickClock clock(out_.header, std::move(syncs_));
        size_t segment = 0;
        for (Event& e : out_.events) {
            e.timestamp = clock.ns(e.timestamp, segment);
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

    std::vector<wire::SyncPoint> syncs_;

private:
    TraceData& out_;
    std::unordered_map<uint64_t, ThreadState> threads_;
    Function function_;  // the definition being decoded
    std::unordered_map<uint64_t, uint32_t> node_index_;  // file node id -> sample_nodes index
    std::vector<uint64_t> node_parent_ids_;
    std::vector<uint64_t> sample_node_ids_;
};

}  // namespace

bool decode(const uint8_t* data, size_t size, TraceData& out, const ReadOptions& options) {
    out = TraceData();
    if (!wire::header(data, size, out.header, out.error, out.truncated)) {
        return false;
    }
    out.python_version = std::string(out.header.python_version);
    out.header.python_version = out.python_version;
    // Generous reservations (the smallest event is 3 bytes): untouched pages cost nothing,
    // regrowth copies everything. Small inputs grow cheaply.
    if (size > (size_t{1} << 20)) {
        size_t estimate = std::min<size_t>(size / 3, size_t{1} << 26);
        out.events.reserve(estimate);
        out.nodes.reserve(estimate / 2);
    }
    Decoder decoder(out);
    bool whole = wire::for_each_record(
        data, size, out.header.header_size, [&](format::RecordType type, Cursor body, size_t record_offset) {
            switch (type) {
            case format::RecordType::Chunk:
                if (!decoder.chunk(body)) {
                    decoder.record_error("malformed chunk", record_offset);
                }
                break;
            case format::RecordType::ClockSync: {
                wire::SyncPoint sync{};
                if (wire::clock_sync(body, sync)) {
                    decoder.syncs_.push_back(sync);
                } else {
                    decoder.record_error("malformed clock sync", record_offset);
                }
                break;
            }
            case format::RecordType::Loss: {
                uint64_t lost = 0;
                if (wire::loss(body, lost)) {
                    out.lost_events += lost;
                } else {
                    decoder.record_error("malformed loss record", record_offset);
                }
                break;
            }
            case format::RecordType::End: {
                uint64_t lost = 0;
                if (wire::end(body, lost)) {
                    out.complete = true;
                    out.lost_events = std::max(out.lost_events, lost);
                } else {
                    decoder.record_error("malformed end record", record_offset);
                }
                break;
            }
            case format::RecordType::SamplerStats: {
                SamplerStats& st = out.sampler;
                if (wire::sampler_stats(body, st)) {
                    st.present = true;
                } else {
                    decoder.record_error("malformed sampler stats record", record_offset);
                }
                break;
            }
            default:
                break;  // unknown record types are skipped (forward compatibility)
            }
        });
    out.truncated = !whole;
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
