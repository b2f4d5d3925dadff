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
    explicit Decoder(TraceData& out) : out_(out) {}

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
        return wire::decode_chunk(
            c, out_, function_, [&](uint64_t tid) -> ThreadState& { return thread(tid); },
            [&](ThreadState& ts, uint64_t ticks, const wire::RawEvent& raw) {
                add(ts, ticks, raw);
                return true;
            });
    }

    void finish(const ReadOptions& options, std::vector<wire::SyncPoint> syncs) {
        tree_.finish();
        for (Event& e : out_.events) {
            if (e.kind == Kind::Sample) {
                e.stack = out_.samples.node(sample_ids_[e.stack]);
            }
        }
        sample_ids_ = {};
        const wire::TickClock clock(out_.header, std::move(syncs));
        size_t segment = 0;
        for (Event& e : out_.events) {
            e.timestamp = clock.ns(e.timestamp, segment);
        }
        const wire::FunctionsById by_id(out_.functions);
        for (Event& e : out_.events) {
            if (e.kind == Kind::Push) {
                e.caller_line = by_id.caller_line(e.caller, static_cast<uint32_t>(e.caller_line));
            }
        }
        if (options.sort) {
            std::stable_sort(out_.events.begin(), out_.events.end(),
                             [](const Event& a, const Event& b) { return a.timestamp < b.timestamp; });
        }
    }

private:
    void add(ThreadState& ts, uint64_t ticks, const wire::RawEvent& raw) {
        auto& nodes = out_.nodes;
        Event e;
        e.timestamp = ticks;
        e.thread = ts.index;
        e.function_id = raw.function_id;
        e.stack = ts.top;
        switch (raw.tag) {
        case format::EventTag::Push:
            e.kind = Kind::Push;
            e.caller = raw.caller;
            e.caller_line = static_cast<int32_t>(raw.caller_offset);  // a line once finish() resolves it
            nodes.push_back(StackNode{ts.top, e.function_id});
            ts.top = static_cast<uint32_t>(nodes.size() - 1);
            e.stack = ts.top;
            break;
        case format::EventTag::Pop:
            e.kind = Kind::Pop;
            if (ts.top != kNoNode && nodes[ts.top].function_id == e.function_id) {
                ts.top = nodes[ts.top].parent;
            } else {
                ++out_.unmatched_pops;
            }
            break;
        case format::EventTag::Function:
            e.kind = Kind::Function;
            e.aux = static_cast<uint32_t>(out_.functions.size());
            out_.function_index.emplace(function_.id, e.aux);
            out_.functions.push_back(std::move(function_));
            break;
        case format::EventTag::Mark:
            e.kind = Kind::Mark;
            e.mark_kind = raw.value;
            e.aux = static_cast<uint32_t>(out_.marks.size());
            out_.marks.emplace_back(raw.text);
            break;
        case format::EventTag::Thread:
            e.kind = raw.value ? Kind::ThreadStart : Kind::ThreadStop;
            break;
        case format::EventTag::StackNode:  // definitions, not events
            tree_.node(raw);
            return;
        case format::EventTag::NativeSymbol:
            tree_.symbol(raw);
            return;
        case format::EventTag::Sample:
            e.kind = Kind::Sample;
            e.mark_kind = raw.value;
            e.function_id = 0;
            tree_.use(raw.node);
            e.stack = static_cast<uint32_t>(sample_ids_.size());  // the file node id's, until finish()
            sample_ids_.push_back(raw.node);
            break;
        }
        out_.events.push_back(e);
    }

    TraceData& out_;
    std::unordered_map<uint64_t, ThreadState> threads_;
    Function function_;  // the definition being decoded
    wire::SampleTreeBuilder tree_{out_.samples};
    std::vector<uint64_t> sample_ids_;  // per Kind::Sample event: its file node id
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
    wire::ErrorLog errors;
    std::vector<wire::SyncPoint> syncs;
    bool whole = wire::for_each_record(
        data, size, out.header.header_size, [&](format::RecordType type, Cursor body, size_t record_offset) {
            if (type != format::RecordType::Chunk) {
                wire::meta_record(type, body, record_offset, out, syncs, errors);
            } else if (!decoder.chunk(body)) {
                errors.add("malformed chunk", record_offset);
            }
        });
    out.truncated = !whole;
    errors.report(out.error);
    decoder.finish(options, std::move(syncs));
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
