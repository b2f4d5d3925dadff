#include "reader/trace_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace etwtrace::reader {

using format::Cursor;

TraceIndex::~TraceIndex() {
    if (fd >= 0) {
        ::close(fd);
    }
}

namespace {

// Reads `length` bytes at `offset` (short only at the end of the file); false on an I/O error.
bool read_at(int fd, uint64_t offset, uint8_t* out, size_t length, size_t& got) {
    got = 0;
    while (got < length) {
        ssize_t n = ::pread(fd, out + got, length - got, static_cast<off_t>(offset + got));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        if (n == 0) {
            break;
        }
        got += static_cast<size_t>(n);
    }
    return true;
}

// The file through a window of a few MiB: pass 1's sequential reads, one record at a time.
class BlockReader {
public:
    BlockReader(int fd, uint64_t size) : fd_(fd), size_(size) {}

    // Bytes [offset, offset + length) (all within the file), or nullptr on an I/O error.
    const uint8_t* at(uint64_t offset, size_t length) {
        if (offset >= start_ && offset + length <= start_ + have_) {
            return buffer_.data() + (offset - start_);
        }
        size_t want = static_cast<size_t>(std::min<uint64_t>(std::max(length, kBlock), size_ - offset));
        if (buffer_.size() < want) {
            buffer_.resize(want);
        }
        size_t got = 0;
        if (!read_at(fd_, offset, buffer_.data(), want, got) || got < length) {
            have_ = 0;
            return nullptr;
        }
        start_ = offset;
        have_ = got;
        return buffer_.data();
    }

private:
    static constexpr size_t kBlock = size_t{4} << 20;
    int fd_;
    uint64_t size_;
    std::vector<uint8_t> buffer_;
    uint64_t start_ = 0;
    size_t have_ = 0;
};

struct IndexThread {
    uint32_t index = 0;
    uint64_t next_seq = 0;
    std::vector<uint32_t> stack;  // FunctionIDs, for unmatched pops
};

class Indexer {
public:
    explicit Indexer(TraceIndex& out) : out_(out) {}

    IndexThread& thread(uint64_t tid) {
        auto [it, added] = threads_.try_emplace(tid);
        if (added) {
            it->second.index = static_cast<uint32_t>(out_.thread_ids.size());
            out_.thread_ids.push_back(tid);
            out_.thread_chunks.emplace_back();
        }
        return it->second;
    }

    // One CHUNK payload at file offset `offset`: false when malformed.
    bool chunk(Cursor body, uint64_t offset) {
        Cursor head = body;
        uint64_t tid = 0, seq = 0, base = 0;
        if (!wire::chunk_header(head, tid, seq, base)) {
            return false;
        }
        ChunkRef ref;
        ref.offset = offset + static_cast<uint64_t>(head.pos - body.pos);
        ref.size = static_cast<uint32_t>(head.end - head.pos);
        ref.thread = thread(tid).index;
        ref.base_ticks = base;
        ref.first_event = out_.events;
        ref.first_function = static_cast<uint32_t>(out_.functions.size());
        out_.thread_chunks[ref.thread].push_back(static_cast<uint32_t>(out_.chunk_refs.size()));
        out_.chunk_refs.push_back(ref);
        return wire::decode_chunk(
            body, out_, function_, [&](uint64_t id) -> IndexThread& { return thread(id); },
            [&](IndexThread& ts, uint64_t, const wire::RawEvent& raw) {
                switch (raw.tag) {  // definitions of the sampler's stacks are not events
                case format::EventTag::StackNode:
                    tree_.node(raw);
                    return true;
                case format::EventTag::NativeSymbol:
                    tree_.symbol(raw);
                    return true;
                case format::EventTag::Sample:
                    tree_.use(raw.node);
                    break;
                default:
                    break;
                }
                ++out_.events;
                switch (raw.tag) {
                case format::EventTag::Push:
                    ts.stack.push_back(raw.function_id);
                    break;
                case format::EventTag::Pop:
                    if (!ts.stack.empty() && ts.stack.back() == raw.function_id) {
                        ts.stack.pop_back();
                    } else {
                        ++out_.unmatched_pops;
                    }
                    break;
                case format::EventTag::Function:
                    out_.functions.push_back(std::move(function_));
                    break;
                default:
                    break;
                }
                return true;
            });
    }

    void finish() { tree_.finish(); }

private:
    TraceIndex& out_;
    std::unordered_map<uint64_t, IndexThread> threads_;
    Function function_;
    wire::SampleTreeBuilder tree_{out_.samples};
};

}  // namespace

std::shared_ptr<const TraceIndex> index_file(const std::string& path, std::string& error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    return index_fd(fd, path, error);
}

std::shared_ptr<const TraceIndex> index_fd(int fd, const std::string& path, std::string& error) {
    auto out = std::make_shared<TraceIndex>();
    out->fd = fd;
    struct stat st {};
    if (fstat(out->fd, &st) < 0) {
        error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    out->size = static_cast<uint64_t>(st.st_size);
    BlockReader file(out->fd, out->size);
    // The header, as the reference decode reads it (a short file is a truncated header).
    size_t head = static_cast<size_t>(std::min<uint64_t>(out->size, format::kFixedHeaderSize + 0xffff));
    static const uint8_t kEmpty[1] = {0};  // never a null pointer, even for an empty file
    const uint8_t* data = head ? file.at(0, head) : kEmpty;
    if (head && !data) {
        error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    // decode_header reads only the fixed part and python_version, which `head` holds, and
    // compares header_size with the whole file's size.
    if (!wire::header(data, static_cast<size_t>(out->size), out->header, error, out->truncated)) {
        return nullptr;
    }
    out->python_version = std::string(out->header.python_version);
    out->header.python_version = out->python_version;

    Indexer indexer(*out);
    wire::ErrorLog errors;
    uint64_t pos = out->header.header_size;
    while (pos < out->size) {
        size_t framing = static_cast<size_t>(std::min<uint64_t>(out->size - pos, 1 + format::kMaxVarint64));
        const uint8_t* p = file.at(pos, framing);
        if (!p) {
            error = path + ": " + std::strerror(errno);
            return nullptr;
        }
        Cursor c{p, p + framing};
        uint8_t type = 0;
        uint64_t payload = 0;
        if (!c.u8(type) || !c.varint(payload)) {
            out->truncated = true;
            break;
        }
        const uint64_t body_offset = pos + static_cast<uint64_t>(c.pos - p);
        if (payload > out->size - body_offset) {
            out->truncated = true;
            break;
        }
        const uint8_t* body = file.at(body_offset, static_cast<size_t>(payload));
        if (!body && payload) {
            error = path + ": " + std::strerror(errno);
            return nullptr;
        }
        Cursor record{body, body + payload};
        auto record_type = static_cast<format::RecordType>(type);
        if (record_type != format::RecordType::Chunk) {
            wire::meta_record(record_type, record, static_cast<size_t>(pos), *out, out->syncs, errors);
        } else if (!indexer.chunk(record, body_offset)) {
            errors.add("malformed chunk", static_cast<size_t>(pos));
        }
        pos = body_offset + payload;
    }
    indexer.finish();
    errors.report(out->error);
    return out;
}

TraceStream::TraceStream(std::shared_ptr<const TraceIndex> index)
    : index_(std::move(index)), clock_(index_->header, index_->syncs), by_id_(index_->functions) {
    threads_.resize(index_->thread_ids.size());
    for (uint32_t i = 0; i < threads_.size(); ++i) {
        schedule_next_chunk(i);
    }
}

// The thread's next chunk goes into the merge by a lower bound of its first event's key, and is
// read only when that comes first: threads hold a buffer only while their events are current.
void TraceStream::schedule_next_chunk(uint32_t i) {
    Thread& t = threads_[i];
    t.loaded = false;
    if (!t.buffer.empty() || t.buffer.capacity()) {
        t.buffer.clear();
        if (spare_.size() < 8) {
            spare_.push_back(std::move(t.buffer));
        }
        t.buffer = std::vector<uint8_t>();
    }
    const auto& chunks = index_->thread_chunks[i];
    if (t.next_chunk >= chunks.size()) {
        return;  // the thread's events are over
    }
    const ChunkRef& ref = index_->chunk_refs[chunks[t.next_chunk]];
    t.key_ts = clock_.ns(ref.base_ticks, t.segment);
    t.key_order = ref.first_event;
    heap_push(i);
}

bool TraceStream::load_chunk(uint32_t i) {
    Thread& t = threads_[i];
    const ChunkRef& ref = index_->chunk_refs[index_->thread_chunks[i][t.next_chunk++]];
    if (!spare_.empty()) {
        t.buffer = std::move(spare_.back());
        spare_.pop_back();
    }
    t.buffer.resize(ref.size);
    size_t got = 0;
    if (!read_at(index_->fd, ref.offset, t.buffer.data(), ref.size, got) || got < ref.size) {
        if (io_error_.empty()) {
            io_error_ = got < ref.size ? "the file was cut short while it was read" : std::strerror(errno);
        }
        return false;
    }
    t.cursor = Cursor{t.buffer.data(), t.buffer.data() + ref.size};
    t.ticks = ref.base_ticks;
    t.order = ref.first_event;
    t.functions = ref.first_function;
    t.loaded = true;
    return true;
}

uint32_t TraceStream::intern(uint32_t parent, uint32_t function_id) {
    // parent + 1: a root's key is 0 << 32 | id, and no key is the table's empty ~0.
    const auto fresh = static_cast<uint32_t>(nodes_.size());
    const uint32_t node =
        table_.find_or_insert((static_cast<uint64_t>(parent + 1u) << 32) | function_id, fresh);
    if (node == fresh) {
        nodes_.push_back(StackNode{parent, function_id});
    }
    return node;
}

// The thread's next event into `pending` (and its merge key); false when its chunk is over
// (or the rest of it is malformed, which the index counted the same way).
bool TraceStream::decode_next(uint32_t i) {
    Thread& t = threads_[i];
    wire::RawEvent raw;
    do {
        if (t.cursor.pos >= t.cursor.end) {
            return false;
        }
        if (!wire::event(t.cursor, t.ticks, raw, scratch_)) {
            t.cursor.pos = t.cursor.end;
            return false;
        }
        // The sampler's stack definitions: pass 1 has them (TraceIndex::samples).
    } while (raw.tag == format::EventTag::StackNode || raw.tag == format::EventTag::NativeSymbol);
    StreamEvent& e = t.pending;
    e.timestamp = clock_.ns(t.ticks, t.segment);
    e.thread = i;
    e.function_id = raw.function_id;
    e.stack = t.top;
    switch (raw.tag) {
    case format::EventTag::Push:
        e.kind = Kind::Push;
        e.caller = raw.caller;
        e.caller_line = by_id_.caller_line(raw.caller, raw.caller_offset);
        t.top = e.stack = intern(t.top, raw.function_id);
        break;
    case format::EventTag::Pop:
        e.kind = Kind::Pop;
        if (t.top != kNoNode && nodes_[t.top].function_id == raw.function_id) {
            t.top = nodes_[t.top].parent;
        }
        break;
    case format::EventTag::Function:
        e.kind = Kind::Function;
        e.function = t.functions++;
        break;
    case format::EventTag::Mark:
        e.kind = Kind::Mark;
        e.mark_kind = raw.value;
        e.text = raw.text;
        break;
    case format::EventTag::Thread:
        e.kind = raw.value ? Kind::ThreadStart : Kind::ThreadStop;
        break;
    case format::EventTag::Sample:
        e.kind = Kind::Sample;
        e.mark_kind = raw.value;
        e.function_id = 0;
        e.stack = index_->samples.node(raw.node);
        break;
    case format::EventTag::StackNode:
    case format::EventTag::NativeSymbol:
        break;  // skipped above
    }
    t.key_ts = e.timestamp;
    t.key_order = t.order++;
    return true;
}

bool TraceStream::later(uint32_t a, uint32_t b) const {
    const Thread &x = threads_[a], &y = threads_[b];
    return x.key_ts != y.key_ts ? x.key_ts > y.key_ts : x.key_order > y.key_order;
}

// Makes current_ the thread whose pending event comes first, reading chunks as needed; false
// at the end. The current thread stays out of the heap while it stays first (one thread's
// events mostly follow each other), so most events cost no heap operation.
bool TraceStream::settle() {
    for (;;) {
        if (current_ == kNone) {
            if (heap_.empty()) {
                return false;
            }
            current_ = heap_pop();
        }
        Thread& t = threads_[current_];
        if (!t.loaded) {
            if (!load_chunk(current_)) {
                heap_.clear();  // the file cannot be read further: the stream ends, io_error() says why
                current_ = kNone;
                return false;
            }
            if (!decode_next(current_)) {
                schedule_next_chunk(current_);
                current_ = kNone;
                continue;
            }
        }
        if (!heap_.empty() && later(current_, heap_.front())) {
            heap_push(current_);
            current_ = heap_pop();
            continue;
        }
        return true;
    }
}

// The current thread's pending event is used: decode its next one.
void TraceStream::consume() {
    threads_[current_].used_top = threads_[current_].top;
    if (!decode_next(current_)) {
        schedule_next_chunk(current_);
        current_ = kNone;
    }
}

bool TraceStream::next(StreamEvent& e) {
    if (!settle()) {
        return false;
    }
    e = threads_[current_].pending;
    if (e.kind == Kind::Mark) {
        text_.assign(e.text);  // the chunk's buffer may be reused before the caller reads it
        e.text = text_;
    }
    consume();
    return true;
}

void TraceStream::skip_before(uint64_t timestamp) {
    while (settle() && threads_[current_].pending.timestamp < timestamp) {
        consume();
    }
}

// A min-heap on (key_ts, key_order): std::*_heap keep the greatest first, so compare reversed.
void TraceStream::heap_push(uint32_t thread) {
    heap_.push_back(thread);
    std::push_heap(heap_.begin(), heap_.end(), [this](uint32_t a, uint32_t b) { return later(a, b); });
}

uint32_t TraceStream::heap_pop() {
    std::pop_heap(heap_.begin(), heap_.end(), [this](uint32_t a, uint32_t b) { return later(a, b); });
    const uint32_t thread = heap_.back();
    heap_.pop_back();
    return thread;
}

}  // namespace etwtrace::reader
