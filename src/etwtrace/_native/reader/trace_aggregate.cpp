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

#include <algorithm>
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
    uint64_t last = 0;                 // windowed: the thread's previous push or pop (ns)
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
    Aggregator(TraceAggregate& out, const std::vector<TimeSpan>* spans) : out_(out), spans_(spans) {}

    void record_error(const char* what, size_t offset) { errors_.add(what, offset); }
    // The first damage in file order, in the chunks (pass 2) or the other records (pass 1).
    void finish_errors(const wire::ErrorLog& meta) {
        errors_.merge(meta);
        errors_.report(out_.error);
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
        const wire::TickClock& clock = *clock_;
        return wire::decode_chunk(
            c, out_, function_, [&](uint64_t tid) -> ThreadAgg& { return thread(tid); },
            [&](ThreadAgg& ts, uint64_t ticks, const wire::RawEvent& raw) {
                if (raw.tag == format::EventTag::StackNode || raw.tag == format::EventTag::NativeSymbol) {
                    return true;  // definitions of samples' stacks, not events: read() streams samples
                }
                const uint64_t now = clock.ns(ticks, ts.segment);
                ++out_.events;
                first_ = std::min(first_, now);
                last_ = std::max(last_, now);
                switch (raw.tag) {
                case format::EventTag::Push:
                    account(ts, now);
                    return push(ts, raw.function_id, now);
                case format::EventTag::Pop:
                    account(ts, now);
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
                return true;
            });
    }

    // Frames still open: closed at the trace's last timestamp, innermost first.
    void finish() {
        out_.first_ns = out_.events ? first_ : 0;
        out_.last_ns = out_.events ? last_ : 0;
        for (auto& [tid, ts] : threads_) {
            account(ts, out_.last_ns);
            while (!ts.stack.empty()) {
                pop(ts, out_.last_ns);
                ++out_.open_frames;
            }
        }
        for (uint32_t id = 0; id < totals_.size(); ++id) {
            const FunctionTotals& t = totals_[id];
            if (t.calls || t.inclusive_ns || t.exclusive_ns) {  // windowed: time without a call
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

    // Windowed: the time since the thread's previous push or pop, inside the spans, is the
    // top frame's own (without a window, pop() derives it from durations instead).
    void account(ThreadAgg& ts, uint64_t now) {
        if (!spans_) {
            return;
        }
        if (!ts.stack.empty() && now > ts.last) {
            const uint64_t elapsed = clipped(ts.last, now);
            if (elapsed) {
                const Frame& top = ts.stack.back();
                out_.nodes[top.node].self_ns += elapsed;
                totals(top.function_id).exclusive_ns += elapsed;
            }
        }
        ts.last = now;
    }

    // Nanoseconds of [a, b] inside the spans.
    uint64_t clipped(uint64_t a, uint64_t b) const {
        uint64_t sum = 0;
        for (const TimeSpan& s : *spans_) {
            const uint64_t lo = std::max(a, s.start), hi = std::min(b, s.end);
            sum += hi > lo ? hi - lo : 0;
        }
        return sum;
    }

    bool inside(uint64_t t) const {
        return std::any_of(spans_->begin(), spans_->end(), [t](const TimeSpan& s) { return s.start <= t && t <= s.end; });
    }

    void pop(ThreadAgg& ts, uint64_t now) {
        const Frame f = ts.stack.back();
        ts.stack.pop_back();
        const uint64_t duration = now > f.start ? now - f.start : 0;  // damaged clocks can step back
        AggregateNode& node = out_.nodes[f.node];
        FunctionTotals& t = totals(f.function_id);
        const bool outermost = --ts.active_calls(f.function_id) == 0;
        if (spans_) {
            // A call counts when it ends inside the window; its time only as far as it is inside.
            if (inside(now)) {
                ++node.calls;
                ++t.calls;
            }
            const uint64_t inclusive = clipped(f.start, now);
            node.inclusive_ns += inclusive;
            if (outermost) {
                t.inclusive_ns += inclusive;
            }
            return;
        }
        const uint64_t self = duration > f.child_ns ? duration - f.child_ns : 0;
        ++node.calls;
        node.self_ns += self;
        node.inclusive_ns += duration;
        ++t.calls;
        t.exclusive_ns += self;
        if (outermost) {  // the outermost call of this function
            t.inclusive_ns += duration;
        }
        if (!ts.stack.empty()) {
            ts.stack.back().child_ns += duration;
        }
    }

    TraceAggregate& out_;
    const std::vector<TimeSpan>* spans_;  // nullptr: the whole trace
    std::optional<wire::TickClock> clock_;
    std::unordered_map<uint64_t, ThreadAgg> threads_;
    wire::NodeTable table_;
    std::vector<FunctionTotals> totals_;
    std::unordered_map<uint32_t, FunctionTotals> totals_sparse_;
    Function function_;  // the definition being decoded
    uint64_t first_ = std::numeric_limits<uint64_t>::max();
    uint64_t last_ = 0;
    wire::ErrorLog errors_;
};

}  // namespace

bool aggregate(const uint8_t* data, size_t size, TraceAggregate& out, const std::function<void(size_t)>& consumed,
               const std::vector<TimeSpan>* spans) {
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
    Aggregator aggregator(out, spans);
    wire::ErrorLog meta_errors;
    std::vector<wire::SyncPoint> syncs;
    bool whole = wire::for_each_record(
        data, size, out.header.header_size, [&](format::RecordType type, Cursor body, size_t record_offset) {
            if (type != format::RecordType::Chunk) {
                wire::meta_record(type, body, record_offset, out, syncs, meta_errors);
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
    aggregator.finish_errors(meta_errors);
    return true;
}

bool aggregate_file(const std::string& path, TraceAggregate& out, const std::vector<TimeSpan>* spans) {
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
        return aggregate(nullptr, 0, out, nullptr, spans);
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
    bool ok = aggregate(static_cast<const uint8_t*>(map), size, out, release, spans);
    munmap(map, size);
    return ok;
}

}  // namespace etwtrace::reader
