// trace_aggregate.cpp - streaming aggregation of a trace file (trace_aggregate.h).
//
// Why two passes over the file, and no sort:
//  * Timestamps: ticks become ns piecewise between clock sync points, and the sync points are
//    CLOCK_SYNC records spread through the file (one about every 200 ms, one at the end). A
//    chunk's ticks can lie beyond every sync point seen so far, so converting on the fly
//    could differ from the reader. Pass 1 therefore walks only the record framing (type and
//    size: a few bytes per 128 KiB chunk) and reads CLOCK_SYNC, LOSS and END; pass 2 decodes
//    the chunks with the complete clock (wire::TickClock, the reader's own conversion).
//  * Order: a thread's chunks appear in the file in its own order and its ticks never go
//    backwards, and everything aggregated (durations, call trees) is per thread. So each
//    thread keeps its own shadow stack and chunks are consumed as they come, interleaved
//    between threads in any order; no global time order is ever needed. Only the earliest
//    and latest timestamps are global (max over all events): frames still open at the end
//    are closed there, after pass 2.
// Memory is the call-tree nodes (one per distinct stack per thread, with their counters), the
// interning table that finds them, per-thread shadow stacks, functions and marks. The file is
// mapped, and aggregate_file drops the pages behind the cursor so they do not pile up in the
// resident set either.
#include "reader/trace_aggregate.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_map>

#include "reader/wire.h"

namespace etwtrace::reader {

using format::Cursor;

std::vector<uint32_t> TraceAggregate::stack(uint32_t node) const {
    std::vector<uint32_t> result;
    while (node != kNoNode && node < nodes.size() && result.size() <= nodes.size()) {
        result.push_back(nodes[node].function_id);
        node = nodes[node].parent;
    }
    return result;
}

namespace {

// FunctionIDs are dense from 1 (function_registry.h): per-id arrays up to this size, a hash
// map beyond it (only a damaged file has such ids).
constexpr uint32_t kDenseIds = 1u << 20;
// Node indices stay below this so that a root's key (kRootKey | thread) never equals a node's.
constexpr uint32_t kRootKey = 0x80000000u;

// (parent key, FunctionID) -> node index: open addressing, linear probing. One multiply and,
// usually, one cache line per push: the aggregator's hot lookup.
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
    static constexpr uint64_t kEmpty = ~uint64_t{0};  // parent key 0xffffffff is never used

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

struct Frame {
    uint32_t node;
    uint32_t function_id;
    uint64_t start;     // ns
    uint64_t child_ns;  // inclusive time of the calls it made so far
};

struct ThreadAgg {
    uint32_t index = 0;
    uint64_t next_seq = 0;
    size_t segment = 0;                // TickClock cursor
    std::vector<Frame> stack;
    std::vector<uint32_t> active;      // open calls per FunctionID (< kDenseIds)
    std::unordered_map<uint32_t, uint32_t> active_sparse;

    uint32_t& active_calls(uint32_t id) {
        if (id < kDenseIds) {
            if (id >= active.size()) {
                active.resize(std::max<size_t>(id + 1, active.size() * 2));
            }
            return active[id];
        }
        return active_sparse[id];
    }
};

class Aggregator {
public:
    explicit Aggregator(TraceAggregate& out) : out_(out) {}

    void record_error(const char* what, size_t offset) {
        if (offset < error_offset_) {  // the first in file order, as the reader reports it
            error_offset_ = offset;
            error_what_ = what;
        }
    }

    void finish_errors() {
        if (error_what_) {
            out_.error = std::string(error_what_) + " at byte " + std::to_string(error_offset_);
        }
    }

    void set_clock(std::vector<wire::SyncPoint> syncs) { clock_.emplace(out_.header, std::move(syncs)); }

    ThreadAgg& thread(uint64_t tid) {
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
        ThreadAgg& ts = thread(tid);
        out_.sequence_gaps += wire::sequence_gap(ts.next_seq, seq);
        ++out_.chunks;
        const wire::TickClock& clock = *clock_;
        wire::RawEvent raw;
        while (c.pos < c.end) {
            if (!wire::event(c, ticks, raw, function_)) {
                return false;
            }
            if (raw.tag == format::EventTag::StackNode || raw.tag == format::EventTag::NativeSymbol) {
                continue;  // definitions of the sampler's stacks: not events (as in the reader)
            }
            const uint64_t now = clock.ns(ticks, ts.segment);
            ++out_.events;
            first_ = std::min(first_, now);
            last_ = std::max(last_, now);
            switch (raw.tag) {
            case format::EventTag::Push:
                if (!push(ts, raw.function_id, now)) {
                    return false;
                }
                break;
            case format::EventTag::Pop:
                if (!ts.stack.empty() && ts.stack.back().function_id == raw.function_id) {
                    pop(ts, now);
                } else {
                    ++out_.unmatched_pops;
                }
                break;
            case format::EventTag::Function:
                function_.lines.clear();
                function_.lines.shrink_to_fit();
                out_.functions.push_back(std::move(function_));
                break;
            case format::EventTag::Mark:
                out_.marks.push_back(AggregateMark{now, ts.index, raw.value, std::string(raw.text)});
                break;
            case format::EventTag::Thread:
                break;
            case format::EventTag::Sample:
                ++out_.samples;
                break;
            case format::EventTag::StackNode:
            case format::EventTag::NativeSymbol:
                break;
            }
        }
        return true;
    }

    // Frames still open: closed at the trace's last timestamp, innermost first.
    void finish() {
        out_.first_ns = out_.events ? first_ : 0;
        out_.last_ns = out_.events ? last_ : 0;
        for (auto& [tid, ts] : threads_) {
            while (!ts.stack.empty()) {
                pop(ts, out_.last_ns);
                ++out_.open_frames;
            }
        }
        for (uint32_t id = 0; id < totals_.size(); ++id) {
            if (totals_[id].calls) {
                out_.function_totals.emplace_back(id, totals_[id]);
            }
        }
        std::vector<std::pair<uint32_t, FunctionTotals>> sparse(totals_sparse_.begin(), totals_sparse_.end());
        std::sort(sparse.begin(), sparse.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        out_.function_totals.insert(out_.function_totals.end(), sparse.begin(), sparse.end());
    }

private:
    FunctionTotals& totals(uint32_t id) {
        if (id < kDenseIds) {
            if (id >= totals_.size()) {
                totals_.resize(std::max<size_t>(id + 1, totals_.size() * 2));
            }
            return totals_[id];
        }
        return totals_sparse_[id];
    }

    bool push(ThreadAgg& ts, uint32_t function_id, uint64_t now) {
        uint32_t parent = ts.stack.empty() ? kRootKey | ts.index : ts.stack.back().node;
        auto fresh = static_cast<uint32_t>(out_.nodes.size());
        uint32_t node = table_.find_or_insert(static_cast<uint64_t>(parent) << 32 | function_id, fresh);
        if (node == fresh) {
            if (fresh >= kRootKey - 1) {
                return false;  // 2^31 distinct stacks: not a trace this format can describe
            }
            out_.nodes.push_back(AggregateNode{ts.stack.empty() ? kNoNode : parent, function_id, ts.index});
        }
        ts.stack.push_back(Frame{node, function_id, now, 0});
        ++ts.active_calls(function_id);
        return true;
    }

    void pop(ThreadAgg& ts, uint64_t now) {
        const Frame f = ts.stack.back();
        ts.stack.pop_back();
        const uint64_t duration = now > f.start ? now - f.start : 0;  // damaged clocks can step back
        const uint64_t self = duration > f.child_ns ? duration - f.child_ns : 0;
        AggregateNode& node = out_.nodes[f.node];
        ++node.calls;
        node.self_ns += self;
        node.inclusive_ns += duration;
        FunctionTotals& t = totals(f.function_id);
        ++t.calls;
        t.exclusive_ns += self;
        if (--ts.active_calls(f.function_id) == 0) {  // the outermost call of this function
            t.inclusive_ns += duration;
        }
        if (!ts.stack.empty()) {
            ts.stack.back().child_ns += duration;
        }
    }

    TraceAggregate& out_;
    std::optional<wire::TickClock> clock_;
    std::unordered_map<uint64_t, ThreadAgg> threads_;
    NodeTable table_;
    std::vector<FunctionTotals> totals_;
    std::unordered_map<uint32_t, FunctionTotals> totals_sparse_;
    Function function_;  // the definition being decoded
    uint64_t first_ = std::numeric_limits<uint64_t>::max();
    uint64_t last_ = 0;
    size_t error_offset_ = std::numeric_limits<size_t>::max();
    const char* error_what_ = nullptr;
};

}  // namespace

bool aggregate(const uint8_t* data, size_t size, TraceAggregate& out, const std::function<void(size_t)>& consumed) {
    out = TraceAggregate();
    if (!wire::header(data, size, out.header, out.error, out.truncated)) {
        return false;
    }
    out.python_version = std::string(out.header.python_version);
    out.header.python_version = out.python_version;
    constexpr size_t kReleaseEvery = size_t{64} << 20;
    size_t released = 0;
    auto progress = [&](size_t offset) {
        if (consumed && offset - released >= kReleaseEvery) {
            consumed(offset);
            released = offset;
        }
    };

    // Pass 1: the framing, clock sync points, losses, the END record.
    Aggregator aggregator(out);
    std::vector<wire::SyncPoint> syncs;
    bool whole = wire::for_each_record(
        data, size, out.header.header_size, [&](format::RecordType type, Cursor body, size_t record_offset) {
            switch (type) {
            case format::RecordType::ClockSync: {
                wire::SyncPoint sync{};
                if (wire::clock_sync(body, sync)) {
                    syncs.push_back(sync);
                } else {
                    aggregator.record_error("malformed clock sync", record_offset);
                }
                break;
            }
            case format::RecordType::Loss: {
                uint64_t lost = 0;
                if (wire::loss(body, lost)) {
                    out.lost_events += lost;
                } else {
                    aggregator.record_error("malformed loss record", record_offset);
                }
                break;
            }
            case format::RecordType::End: {
                uint64_t lost = 0;
                if (wire::end(body, lost)) {
                    out.complete = true;
                    out.lost_events = std::max(out.lost_events, lost);
                } else {
                    aggregator.record_error("malformed end record", record_offset);
                }
                break;
            }
            case format::RecordType::SamplerStats: {
                SamplerStats stats;  // the report reads the counters through read(): checked only
                if (!wire::sampler_stats(body, stats)) {
                    aggregator.record_error("malformed sampler stats record", record_offset);
                }
                break;
            }
            default:
                break;
            }
            progress(record_offset);
        });
    out.truncated = !whole;
    if (consumed) {
        consumed(size);  // pass 1 touched a few bytes per record: let those pages go too
    }
    released = 0;

    // Pass 2: the chunks, with the whole clock.
    aggregator.set_clock(std::move(syncs));
    wire::for_each_record(data, size, out.header.header_size,
                          [&](format::RecordType type, Cursor body, size_t record_offset) {
                              if (type == format::RecordType::Chunk && !aggregator.chunk(body)) {
                                  aggregator.record_error("malformed chunk", record_offset);
                              }
                              progress(record_offset);
                          });
    aggregator.finish();
    aggregator.finish_errors();
    return true;
}

bool aggregate_file(const std::string& path, TraceAggregate& out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        out = TraceAggregate();
        out.error = path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (fstat(fd, &st) < 0) {
        out = TraceAggregate();
        out.error = path + ": " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        return aggregate(nullptr, 0, out);
    }
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) {
        out = TraceAggregate();
        out.error = path + ": " + std::strerror(errno);
        return false;
    }
    madvise(map, size, MADV_SEQUENTIAL);
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    // Read-only private mapping of a file: dropped pages are read back from the page cache if
    // they are touched again, so releasing too much is only slower, never wrong.
    auto release = [&](size_t offset) {
        size_t bytes = offset / page * page;
        if (bytes) {
            madvise(map, bytes, MADV_DONTNEED);
        }
    };
    bool ok = aggregate(static_cast<const uint8_t*>(map), size, out, release);
    munmap(map, size);
    return ok;
}

}  // namespace etwtrace::reader
