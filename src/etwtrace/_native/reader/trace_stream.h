// trace_stream.h - reads a trace file (docs/trace-format.md) as a stream of events in timestamp
// order, in memory bounded by the threads, functions and distinct stacks, never by the events.
//
// No Python.h: bindings/trace_events.cpp builds etwtrace.read()'s Event objects from it.
//
// Two passes, like the aggregator (trace_aggregate.cpp), for the same reasons:
//  1. index_file() reads the file once, in blocks, and keeps everything but the events: the
//     header, the integrity counters (exactly the reference decode's, trace_reader.h), the
//     clock sync points, the function definitions (CallerLine needs the caller's line table,
//     which may come later in the file), and where each chunk is, with the number of events
//     and definitions before it. So the counters (and warnings about damage) are known before
//     the first event is read.
//  2. A TraceStream merges the threads: each thread's chunks come in its own order and its
//     ticks never go backwards, so the next event overall is the earliest of each thread's
//     next event (ties: file order, as the reference's stable sort). A thread holds one chunk
//     at a time (read with pread when it gets there), so memory is one chunk per thread.
// Stacks are interned: one node per distinct (parent stack, function), shared by all threads.
// The sampler's samples name nodes of the file's own prefix tree, which pass 1 keeps whole
// (TraceIndex::samples: bounded by the distinct sampled stacks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "reader/trace_reader.h"
#include "reader/wire.h"

namespace etwtrace::reader {

struct ChunkRef {
    uint64_t offset = 0;         // of its first event, in the file
    uint32_t size = 0;           // bytes of events
    uint32_t thread = 0;         // index into TraceIndex::thread_ids
    uint64_t base_ticks = 0;
    uint64_t first_event = 0;    // events before it in file order
    uint32_t first_function = 0; // definitions before it in file order
};

// What pass 1 learns: everything but the events.
struct TraceIndex : TraceSummary {
    std::vector<Function> functions;          // in file order, with their line tables
    std::vector<uint64_t> thread_ids;         // native thread ids, in order of first chunk
    std::vector<ChunkRef> chunk_refs;         // in file order
    std::vector<std::vector<uint32_t>> thread_chunks;  // per thread: its chunks (chunk_refs indices)
    std::vector<wire::SyncPoint> syncs;
    SampleTree samples;  // the sampler's stacks (Kind::Sample events name its nodes)
    uint64_t events = 0;
    uint64_t size = 0;  // bytes read (the file's size when it was opened)
    int fd = -1;

    TraceIndex() = default;
    TraceIndex(const TraceIndex&) = delete;
    TraceIndex& operator=(const TraceIndex&) = delete;
    ~TraceIndex();
};

// Pass 1 over the file at `path`. Returns nullptr with `error` set when it cannot be read (or
// its header is damaged); otherwise the index, whose truncated/error describe a damaged body.
std::shared_ptr<const TraceIndex> index_file(const std::string& path, std::string& error);
// The same over an open file descriptor, which the index then owns (closed with it, or on
// failure); `path` only names it in errors.
std::shared_ptr<const TraceIndex> index_fd(int fd, const std::string& path, std::string& error);

struct StreamEvent {
    uint64_t timestamp = 0;     // ns, CLOCK_MONOTONIC
    uint32_t thread = 0;        // index into TraceIndex::thread_ids
    Kind kind = Kind::Push;
    uint8_t mark_kind = 0;      // Mark: its kind; Sample: its flags (format::kSample*)
    uint32_t function_id = 0;   // push/pop: the function; Function: its id
    uint32_t caller = 0;        // push
    int32_t caller_line = 0;    // push: the line in the caller (0 unless Python code)
    uint32_t function = 0;      // Function: index into TraceIndex::functions
    uint32_t stack = kNoNode;   // the stack at the event (push/pop: with the function);
                                // Sample: its node in TraceIndex::samples
    std::string_view text;      // Mark: its text, valid until the next call to next()
};

class TraceStream {
public:
    explicit TraceStream(std::shared_ptr<const TraceIndex> index);

    // The next event, in timestamp order; false at the end (or when the file could not be
    // read again: io_error() says why).
    bool next(StreamEvent& e);
    // Skips the events before `timestamp` (they still move the stacks on).
    void skip_before(uint64_t timestamp);
    // The stack of thread `thread` now (after the events returned or skipped so far).
    uint32_t top(uint32_t thread) const { return thread < threads_.size() ? threads_[thread].used_top : kNoNode; }

    const TraceIndex& index() const { return *index_; }
    size_t node_count() const { return nodes_.size(); }
    uint32_t parent(uint32_t node) const { return nodes_[node].parent; }
    uint32_t function_id(uint32_t node) const { return nodes_[node].function_id; }
    const std::string& io_error() const { return io_error_; }

private:
    struct Thread {
        std::vector<uint8_t> buffer;  // the chunk being read (empty between chunks)
        wire::Cursor cursor{nullptr, nullptr};
        size_t next_chunk = 0;        // into the thread's thread_chunks
        uint64_t ticks = 0;
        size_t segment = 0;           // TickClock cursor
        uint64_t order = 0;           // file order of the next event decoded
        uint32_t functions = 0;       // definitions before it
        uint32_t top = kNoNode;       // the stack after the pending event
        uint32_t used_top = kNoNode;  // the stack after the last event returned or skipped
        bool loaded = false;          // pending is the chunk's next event; else the chunk is unread
        uint64_t key_ts = 0;          // the merge key: the pending event's, or a lower bound of
        uint64_t key_order = 0;       // the unread chunk's (its base ticks, its first event)
        StreamEvent pending;
    };

    bool settle();
    void consume();
    bool later(uint32_t a, uint32_t b) const;
    bool decode_next(uint32_t thread);
    bool load_chunk(uint32_t thread);
    void schedule_next_chunk(uint32_t thread);
    uint32_t intern(uint32_t parent, uint32_t function_id);
    void heap_push(uint32_t thread);
    uint32_t heap_pop();

    std::shared_ptr<const TraceIndex> index_;
    wire::TickClock clock_;
    wire::FunctionsById by_id_;
    std::vector<Thread> threads_;
    static constexpr uint32_t kNone = ~uint32_t{0};
    uint32_t current_ = kNone;    // the thread whose events come next, out of the heap
    std::vector<uint32_t> heap_;  // the other threads with events left, by merge key
    std::vector<std::vector<uint8_t>> spare_;  // buffers of threads between chunks, reused
    std::vector<StackNode> nodes_;
    wire::NodeTable table_;
    Function scratch_;            // definitions decoded again (the index has them)
    std::string text_;            // the returned mark's text
    std::string io_error_;
};

}  // namespace etwtrace::reader
