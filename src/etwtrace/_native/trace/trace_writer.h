// trace_writer.h - writes the trace file of docs/trace-format.md (no Python.h).
//
// Producers (one ThreadBuffer per traced thread) encode events into their own chunk with no
// lock and no atomic; a full chunk (or one older than the flush interval) goes to the
// TraceWriter's queue, and its writer thread appends it to the file as one CHUNK record.
// The queue is bounded: a producer that finds it full waits for the writer (backpressure), so
// memory stays bounded and nothing is dropped. Events are lost only if the file cannot be
// written (e.g. disk full); they are then counted in LOSS/END records.
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "format/trace_format.h"
#include "trace/clock.h"

namespace etwtrace::trace {

inline constexpr size_t kChunkCapacity = 128 * 1024;
// Largest variable-size event (function definition, mark): strings and line tables are cut to
// fit, so a single event always fits in an empty chunk.
inline constexpr size_t kMaxVariableEvent = 64 * 1024;
inline constexpr size_t kMaxQueuedChunks = 32;  // + one chunk per thread: the memory bound

struct Chunk {
    uint64_t thread_id = 0;
    uint64_t seq = 0;
    uint64_t base_ticks = 0;
    uint64_t events = 0;
    size_t used = 0;
    uint8_t data[kChunkCapacity];
};

class TraceWriter {
public:
    struct Options {
        std::string python_version;
        uint32_t parent_pid = 0;
    };

    // Opens `path` (O_NOFOLLOW, mode 0600; O_EXCL when `exclusive`, else truncates) and starts
    // the writer thread. On failure returns nullptr and sets `error` (errno text).
    static std::unique_ptr<TraceWriter> open(const std::string& path, bool exclusive, const Options& options,
                                             std::string& error);
    // Opens `<dir>/etwtrace-<pid>.etwtrace`, or `-<pid>-<n>` when taken: never overwrites.
    static std::unique_ptr<TraceWriter> open_in_directory(const std::string& dir, const Options& options,
                                                          std::string& error);
    // `<stem>-<pid><ext>` beside a user-named `path`, for a fork() child; never overwrites.
    static std::unique_ptr<TraceWriter> open_beside(const std::string& path, const Options& options,
                                                    std::string& error);
    // A new file named after `path` with `tag` before its extension (run.etwtrace ->
    // run.samples.etwtrace, or run.samples-1.etwtrace when that exists): never an existing file.
    static std::unique_ptr<TraceWriter> open_companion(const std::string& path, const std::string& tag,
                                                       const Options& options, std::string& error);

    ~TraceWriter();
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;

    Chunk* acquire();
    // Hands a chunk to the writer thread; waits while kMaxQueuedChunks are pending.
    void submit(Chunk* chunk);
    void release(Chunk* chunk);  // return an unused chunk
    // Drains the queue, writes the END record, closes the file and joins the writer thread.
    void finish();
    // In a fork() child: the writer thread does not exist there and the mutex may be held by
    // it. Closes the file descriptor and leaks the object without touching its locks.
    void abandon_after_fork();
    // Around fork(): pause() writes what is queued and joins the writer thread, so that the
    // process forks with no thread of ours (3.12+ warns about forking a multi-threaded
    // process); chunks submitted meanwhile wait in the queue. resume() starts the thread again.
    // resume() starts it again at the next submit(): CPython 3.13.0 counts the threads after
    // the after-fork-in-parent hooks, so the thread must not be back by then, and a caller
    // whose hooks see events in those hooks calls resume() only once fork() has returned.
    // Without a resume(), the thread restarts when kMaxQueuedChunks wait.
    void pause();
    void resume();

    const std::string& path() const { return path_; }
    uint64_t ticks_per_second() const { return ticks_per_second_; }
    uint64_t lost_events() const;
    // Counts events that were never recorded (the program displaced our profile function).
    void add_lost_events(uint64_t n);
    // A record finish() writes just before END (the sampler's counters); replaces any earlier.
    void set_trailer(format::RecordType type, std::vector<uint8_t> payload);

private:
    TraceWriter() = default;
    bool start(int fd, std::string path, const Options& options, std::string& error);
    void run();
    bool write_all(const ::iovec* iov, int count);
    // Makes sure the next `bytes` fit with kTailReserve still free after them (see claim()).
    bool claim(size_t bytes);
    bool write_record(const ::iovec* iov, int count, bool from_reserve);
    void write_chunk(Chunk* chunk);
    bool write_small_record(format::RecordType type, const uint64_t* values, size_t count, bool from_reserve);

    int fd_ = -1;
    std::string path_;
    uint64_t ticks_per_second_ = 1000000000;
    uint64_t chunks_written_ = 0;
    uint64_t last_sync_ns_ = 0;
    // A full disk: the file's space is allocated ahead of the records (fallocate), always with
    // room for the LOSS and END records beyond the last one written; a record that cannot get
    // its space is not written and its events are counted as lost, so the file ends with an
    // END record that says how many events it lacks, never cut mid-record.
    uint64_t offset_ = 0;         // bytes of whole records in the file
    uint64_t allocated_end_ = 0;  // the file's space is allocated up to here
    bool preallocate_ = true;     // false where the file system has no fallocate

    mutable std::mutex mu_;
    std::condition_variable work_cv_;
    std::condition_variable space_cv_;
    std::deque<Chunk*> queue_;
    size_t in_flight_ = 0;  // queued + being written
    std::vector<Chunk*> free_;
    bool stopping_ = false;
    bool pausing_ = false;
    bool resume_pending_ = false;  // paused, and the next submit() starts the thread again
    uint64_t reported_loss_ = 0;  // losses already in a Loss record
    long writer_tid_ = 0;         // the writer thread's kernel tid (pause() waits for it to be gone)
    uint64_t lost_events_ = 0;
    std::vector<uint8_t> trailer_;  // type byte + payload (set_trailer)
    std::thread thread_;
};

// One thread's encoder. Owned and used by one thread at a time (the hooks run under the GIL);
// flush()/finish_thread() may be called by another thread that holds the same lock.
class ThreadBuffer {
public:
    void attach(TraceWriter* writer, uint64_t thread_id);
    bool attached() const { return writer_ != nullptr; }

    void push(uint32_t function_id, uint32_t caller_id, uint32_t caller_offset) {
        uint64_t now = ticks();
        commit(encode_push(begin_event(now), now, function_id, caller_id, caller_offset));
    }

    void pop(uint32_t function_id) {
        uint64_t now = ticks();
        commit(encode_pop(begin_event(now), now, function_id));
    }

    // push()/pop() for hooks that keep their common case free of calls: false, with nothing
    // written, when the event needs one (a new chunk, a clock other than the TSC); the caller
    // then takes its general path, which calls push()/pop().
    __attribute__((always_inline)) bool try_push(uint32_t function_id, uint32_t caller_id, uint32_t caller_offset) {
        uint64_t now;
        if (__builtin_expect(!ticks_without_call(now) || !event_fits(now), 0)) {
            return false;
        }
        commit(encode_push(cur_, now, function_id, caller_id, caller_offset));
        return true;
    }

    __attribute__((always_inline)) bool try_pop(uint32_t function_id) {
        uint64_t now;
        if (__builtin_expect(!ticks_without_call(now) || !event_fits(now), 0)) {
            return false;
        }
        commit(encode_pop(cur_, now, function_id));
        return true;
    }

    struct LineRun {
        uint32_t offset;
        int32_t line;
    };
    // Stamped now (instrumented mode: the function is being entered), or, for a definition
    // that is written later than what it defines (the sampler's drain), at the previous event's
    // tick: a definition stamped now would hold back the older samples that follow it, as a
    // chunk's ticks never go backwards.
    enum class Stamp { Now, AsPrevious };
    void function(uint32_t id, bool is_python, int first_line, uint64_t begin, uint64_t end,
                  std::string_view source_file, std::string_view name, const std::vector<LineRun>& lines,
                  Stamp stamp = Stamp::Now);
    void mark(format::MarkKind kind, std::string_view text);
    // The sampler's events (format::EventTag::StackNode, NativeSymbol, Sample). A sample is
    // stamped with the tick counter of when it was taken, not when it is written.
    void stack_node(uint64_t node, uint64_t parent, uint64_t frame, int32_t line);
    void native_symbol(uint32_t id, bool kernel, uint64_t address, std::string_view module, std::string_view symbol);
    void sample(uint64_t taken_ticks, uint64_t leaf_node, uint8_t flags);
    void thread(bool start);

    // Sends the current chunk (if it holds events) to the writer.
    void flush();
    // Drops buffered events without writing them (fork child: they belong to the parent).
    void discard_after_fork();
    // Flushes and detaches from the writer.
    void detach();

private:
    uint64_t delta(uint64_t now) {
        // Invariant TSCs agree across cores; still never let a delta go negative. One compare
        // decides both the delta and whether last_ moves (the push/pop path runs this per event).
        if (__builtin_expect(now > last_, 1)) {
            uint64_t d = now - last_;
            last_ = now;
            return d;
        }
        return 0;
    }
    // The same bytes as format::put_varint. The varints of a push or pop are nearly always one
    // or two bytes (ids, call offsets, deltas of a few hundred ticks): those take no loop.
    __attribute__((always_inline)) static uint8_t* put_event_varint(uint8_t* p, uint64_t value) {
        if (__builtin_expect(value < 0x80, 1)) {
            *p = static_cast<uint8_t>(value);
            return p + 1;
        }
        if (value < 0x4000) {
            p[0] = static_cast<uint8_t>(value) | 0x80;
            p[1] = static_cast<uint8_t>(value >> 7);
            return p + 2;
        }
        return format::put_varint(p, value);
    }
    __attribute__((always_inline)) uint8_t* encode_push(uint8_t* p, uint64_t now, uint32_t function_id,
                                                        uint32_t caller_id, uint32_t caller_offset) {
        *p++ = static_cast<uint8_t>(format::EventTag::Push);
        p = put_event_varint(p, delta(now));
        p = put_event_varint(p, function_id);
        p = put_event_varint(p, caller_id);
        return put_event_varint(p, caller_offset);
    }
    __attribute__((always_inline)) uint8_t* encode_pop(uint8_t* p, uint64_t now, uint32_t function_id) {
        *p++ = static_cast<uint8_t>(format::EventTag::Pop);
        p = put_event_varint(p, delta(now));
        return put_event_varint(p, function_id);
    }
    void refill(uint64_t now);
    // The chunk has room for the largest push/pop and is not overdue.
    __attribute__((always_inline)) bool event_fits(uint64_t now) const {
        return static_cast<size_t>(end_ - cur_) >= format::kMaxPushSize && now - chunk_ticks_ <= flush_ticks_;
    }
    // Where the next push/pop goes.
    __attribute__((always_inline)) uint8_t* begin_event(uint64_t now) {
        if (__builtin_expect(!event_fits(now), 0)) {
            refill(now);
        }
        return cur_;
    }
    uint8_t* reserve(size_t size);
    void commit(uint8_t* p) {
        cur_ = p;
        ++events_;
    }

    TraceWriter* writer_ = nullptr;
    Chunk* chunk_ = nullptr;
    uint8_t* cur_ = nullptr;
    uint8_t* end_ = nullptr;
    uint64_t last_ = 0;
    uint64_t chunk_ticks_ = 0;
    uint64_t flush_ticks_ = ~0ull;
    uint64_t events_ = 0;  // events in the current chunk
    uint64_t thread_id_ = 0;
    uint64_t seq_ = 0;
};

}  // namespace etwtrace::trace
