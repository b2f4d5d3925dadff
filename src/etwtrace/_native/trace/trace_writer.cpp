#include "trace/trace_writer.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "platform/linux.h"

namespace etwtrace::trace {

// ---- clock -----------------------------------------------------------------------------------

#if defined(__x86_64__)
static bool detect_invariant_tsc() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000u));
    if (eax < 0x80000007u) {
        return false;
    }
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000007u));
    return (edx & (1u << 8)) != 0;  // CPUID.80000007H:EDX[8] = invariant TSC
}
bool g_use_tsc = detect_invariant_tsc();
#endif

format::TickKind tick_kind() {
#if defined(__x86_64__)
    return g_use_tsc ? format::TickKind::Tsc : format::TickKind::Nanoseconds;
#else
    return format::TickKind::Nanoseconds;
#endif
}

uint64_t ticks_per_second() {
    if (tick_kind() == format::TickKind::Nanoseconds) {
        return 1000000000u;
    }
    static uint64_t cached = 0;
    if (cached) {
        return cached;
    }
    uint64_t ns0 = monotonic_ns(), t0 = ticks();
    uint64_t ns1 = ns0, t1 = t0;
    while (ns1 - ns0 < 2000000) {  // 2 ms
        ns1 = monotonic_ns();
        t1 = ticks();
    }
    cached = static_cast<uint64_t>(static_cast<double>(t1 - t0) * 1e9 / static_cast<double>(ns1 - ns0));
    return cached ? cached : 1;
}

// ---- TraceWriter -----------------------------------------------------------------------------

std::unique_ptr<TraceWriter> TraceWriter::open(const std::string& path, bool exclusive, const Options& options,
                                               std::string& error) {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC);
    int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) {
        error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    std::unique_ptr<TraceWriter> writer(new TraceWriter());
    if (!writer->start(fd, path, options, error)) {
        return nullptr;
    }
    return writer;
}

static std::unique_ptr<TraceWriter> open_first_free(const std::string& stem, const std::string& ext,
                                                    const TraceWriter::Options& options, std::string& error) {
    for (int n = 0; n < 1000; ++n) {
        std::string path = n == 0 ? stem + ext : stem + "-" + std::to_string(n) + ext;
        auto writer = TraceWriter::open(path, /*exclusive=*/true, options, error);
        if (writer || errno != EEXIST) {
            return writer;
        }
    }
    return nullptr;
}

std::unique_ptr<TraceWriter> TraceWriter::open_in_directory(const std::string& dir, const Options& options,
                                                            std::string& error) {
    std::string base = dir.empty() ? "." : dir;
    if (base.back() != '/') {
        base += '/';
    }
    return open_first_free(base + "etwtrace-" + std::to_string(getpid()), ".etwtrace", options, error);
}

// `path` as its stem and its extension (from the last dot of the file name, if any).
static std::pair<std::string, std::string> split_extension(const std::string& path) {
    size_t slash = path.rfind('/');
    size_t dot = path.rfind('.');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash + 1)) {
        return {path.substr(0, dot), path.substr(dot)};
    }
    return {path, ""};
}

std::unique_ptr<TraceWriter> TraceWriter::open_beside(const std::string& path, const Options& options,
                                                      std::string& error) {
    auto [stem, ext] = split_extension(path);
    return open_first_free(stem + "-" + std::to_string(getpid()), ext, options, error);
}

std::unique_ptr<TraceWriter> TraceWriter::open_companion(const std::string& path, const std::string& tag,
                                                         const Options& options, std::string& error) {
    auto [stem, ext] = split_extension(path);
    return open_first_free(stem + tag, ext, options, error);
}

bool TraceWriter::start(int fd, std::string path, const Options& options, std::string& error) {
    fd_ = fd;
    path_ = std::move(path);
    ticks_per_second_ = trace::ticks_per_second();
    format::FileHeader header;
    header.pid = static_cast<uint32_t>(getpid());
    header.parent_pid = options.parent_pid;
    header.tick_kind = tick_kind();
    header.start_ns = monotonic_ns();
    header.start_ticks = ticks();
    header.start_realtime_ns = realtime_ns();
    header.ticks_per_second = ticks_per_second_;
    header.python_version = options.python_version;
    std::vector<uint8_t> bytes(format::kFixedHeaderSize + options.python_version.size());
    size_t size = format::encode_header(header, bytes.data());
    iovec iov{bytes.data(), size};
    if (!write_record(&iov, 1, /*from_reserve=*/false)) {
        error = path_ + ": " + std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
        return false;
    }
    last_sync_ns_ = header.start_ns;
    thread_ = platform::start_thread_without_signals("etwtrace-writer", [this] { run(); });
    return true;
}

TraceWriter::~TraceWriter() {
    finish();
    for (Chunk* chunk : free_) {
        delete chunk;
    }
}

Chunk* TraceWriter::acquire() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!free_.empty()) {
            Chunk* chunk = free_.back();
            free_.pop_back();
            return chunk;
        }
    }
    return new Chunk();
}

void TraceWriter::release(Chunk* chunk) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxQueuedChunks) {
        free_.push_back(chunk);
    } else {
        delete chunk;
    }
}

void TraceWriter::submit(Chunk* chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) {
        // Finished already (a thread exiting after disable): nothing can write this chunk.
        lost_events_ += chunk->events;
        lock.unlock();
        delete chunk;
        return;
    }
    // Paused, the thread restarts at the first chunk after resume(); or when the queue has
    // reached its bound without a resume() (a caller that never learnt the fork was over):
    // memory stays bounded.
    if (pausing_ && (resume_pending_ || queue_.size() >= kMaxQueuedChunks) && !stopping_) {
        pausing_ = false;
        resume_pending_ = false;
        thread_ = platform::start_thread_without_signals("etwtrace-writer", [this] { run(); });  // run() waits for the lock we hold
    }
    // Paused (around fork()), nothing drains the queue: it grows for that moment instead.
    space_cv_.wait(lock, [this] { return in_flight_ < kMaxQueuedChunks || pausing_; });
    queue_.push_back(chunk);
    ++in_flight_;
    lock.unlock();
    work_cv_.notify_one();
}

uint64_t TraceWriter::lost_events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lost_events_;
}

void TraceWriter::add_lost_events(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    lost_events_ += n;
}

bool TraceWriter::write_all(const iovec* iov_in, int count) {
    iovec iov[4];
    for (int i = 0; i < count; ++i) {
        iov[i] = iov_in[i];
    }
    int first = 0;
    while (first < count) {
        ssize_t n = ::writev(fd_, iov + first, count - first);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        size_t left = static_cast<size_t>(n);
        while (first < count && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            ++first;
        }
        if (first < count) {
            iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
            iov[first].iov_len -= left;
        }
    }
    return true;
}

namespace {
constexpr uint64_t kTailReserve = 256;          // a LOSS and an END record, with room to spare
constexpr uint64_t kAllocateAhead = 1u << 20;  // one fallocate per MiB of trace
}  // namespace

bool TraceWriter::claim(size_t bytes) {
    if (!preallocate_) {
        return true;
    }
    uint64_t needed = offset_ + bytes + kTailReserve;
    if (needed <= allocated_end_) {
        return true;
    }
    // Ahead by a MiB while the disk has room, else exactly what this record needs.
    for (uint64_t end : {needed + kAllocateAhead, needed}) {
        if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(allocated_end_),
                        static_cast<off_t>(end - allocated_end_)) == 0) {
            allocated_end_ = end;
            return true;
        }
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL || errno == ENODEV) {
            preallocate_ = false;  // this file system cannot say in advance: write and see
            return true;
        }
    }
    return false;
}

bool TraceWriter::write_record(const iovec* iov, int count, bool from_reserve) {
    size_t bytes = 0;
    for (int i = 0; i < count; ++i) {
        bytes += iov[i].iov_len;
    }
    if (!from_reserve && !claim(bytes)) {
        return false;
    }
    if (!write_all(iov, count)) {
        // Never leave half a record: the reader would take the file for one cut short.
        if (::ftruncate(fd_, static_cast<off_t>(offset_)) == 0) {
            (void)::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET);
        }
        return false;
    }
    offset_ += bytes;
    return true;
}

void TraceWriter::write_chunk(Chunk* chunk) {
    uint8_t head[1 + 4 * format::kMaxVarint64];
    uint8_t fields[3 * format::kMaxVarint64];
    uint8_t* f = fields;
    f = format::put_varint(f, chunk->thread_id);
    f = format::put_varint(f, chunk->seq);
    f = format::put_varint(f, chunk->base_ticks);
    size_t field_size = static_cast<size_t>(f - fields);
    uint8_t* h = head;
    *h++ = static_cast<uint8_t>(format::RecordType::Chunk);
    h = format::put_varint(h, field_size + chunk->used);
    iovec iov[3] = {{head, static_cast<size_t>(h - head)}, {fields, field_size}, {chunk->data, chunk->used}};
    if (!write_record(iov, 3, /*from_reserve=*/false)) {
        std::lock_guard<std::mutex> lock(mu_);
        lost_events_ += chunk->events;
    } else {
        ++chunks_written_;
    }
}

bool TraceWriter::write_small_record(format::RecordType type, const uint64_t* values, size_t count,
                                     bool from_reserve) {
    uint8_t payload[8 * format::kMaxVarint64];
    uint8_t* p = payload;
    for (size_t i = 0; i < count && i < 8; ++i) {
        p = format::put_varint(p, values[i]);
    }
    uint8_t head[1 + format::kMaxVarint64];
    uint8_t* h = head;
    *h++ = static_cast<uint8_t>(type);
    h = format::put_varint(h, static_cast<uint64_t>(p - payload));
    iovec iov[2] = {{head, static_cast<size_t>(h - head)}, {payload, static_cast<size_t>(p - payload)}};
    return write_record(iov, 2, from_reserve);
}

void TraceWriter::run() {
    using namespace std::chrono_literals;
    {
        std::lock_guard<std::mutex> lock(mu_);
        writer_tid_ = static_cast<long>(::syscall(SYS_gettid));
    }
    std::vector<Chunk*> batch;
    for (;;) {
        bool stop = false;
        bool pause = false;
        {
            std::unique_lock<std::mutex> lock(mu_);
            work_cv_.wait_for(lock, 100ms, [this] { return !queue_.empty() || stopping_ || pausing_; });
            batch.assign(queue_.begin(), queue_.end());
            queue_.clear();
            stop = stopping_;
            pause = pausing_;
        }
        for (Chunk* chunk : batch) {
            write_chunk(chunk);
            {
                std::lock_guard<std::mutex> lock(mu_);
                --in_flight_;
                if (free_.size() < kMaxQueuedChunks) {
                    free_.push_back(chunk);
                    chunk = nullptr;
                }
            }
            delete chunk;
            space_cv_.notify_all();
        }
        uint64_t now = monotonic_ns();
        if (now - last_sync_ns_ >= 200000000u || stop) {
            // A sync point every 200 ms lets the reader follow the tick rate precisely.
            uint64_t values[2] = {ticks(), monotonic_ns()};
            (void)write_small_record(format::RecordType::ClockSync, values, 2, /*from_reserve=*/false);
            last_sync_ns_ = now;
        }
        uint64_t loss = lost_events();
        if (loss != reported_loss_) {
            uint64_t values[2] = {0, loss - reported_loss_};
            // On a full disk this waits for the END record, which carries the whole count.
            if (write_small_record(format::RecordType::Loss, values, 2, /*from_reserve=*/false)) {
                reported_loss_ = loss;
            }
        }
        if (stop || pause) {
            std::lock_guard<std::mutex> lock(mu_);
            if (queue_.empty()) {
                break;
            }
        }
    }
}

void TraceWriter::finish() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
            return;
        }
        stopping_ = true;
    }
    work_cv_.notify_one();
    if (thread_.joinable()) {
        thread_.join();
    }
    // Finished while paused: nothing has written the queue yet.
    std::deque<Chunk*> left;
    {
        std::lock_guard<std::mutex> lock(mu_);
        left.swap(queue_);
    }
    for (Chunk* chunk : left) {
        write_chunk(chunk);
        delete chunk;
    }
    if (fd_ >= 0 && !trailer_.empty()) {
        uint8_t head[1 + format::kMaxVarint64];
        uint8_t* h = head;
        *h++ = trailer_[0];
        h = format::put_varint(h, trailer_.size() - 1);
        iovec iov[2] = {{head, static_cast<size_t>(h - head)}, {trailer_.data() + 1, trailer_.size() - 1}};
        // As every record: within the space claimed, and counted in offset_ (the END record
        // follows it, and the file is cut to offset_).
        (void)write_record(iov, 2, /*from_reserve=*/false);
    }
    if (fd_ >= 0) {
        uint64_t values[3] = {chunks_written_, lost_events(), monotonic_ns()};
        (void)write_small_record(format::RecordType::End, values, 3, /*from_reserve=*/true);
        if (allocated_end_ > offset_) {
            (void)::ftruncate(fd_, static_cast<off_t>(offset_));  // give back the space allocated ahead
        }
        ::close(fd_);
        fd_ = -1;
    }
}

void TraceWriter::set_trailer(format::RecordType type, std::vector<uint8_t> payload) {
    payload.insert(payload.begin(), static_cast<uint8_t>(type));
    std::lock_guard<std::mutex> lock(mu_);
    trailer_ = std::move(payload);
}

void TraceWriter::pause() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (pausing_) {
            // Paused still (no chunk since the last resume()): stay so through this fork too.
            resume_pending_ = false;
            return;
        }
        if (stopping_ || !thread_.joinable()) {
            return;
        }
        pausing_ = true;
    }
    work_cv_.notify_one();
    thread_.join();
    // pthread_join returns when the thread has exited, a moment before the kernel stops
    // counting it (/proc/self/stat's num_threads, which CPython reads for its fork() warning).
    long tid = 0;
    {
        std::lock_guard<std::mutex> lock(mu_);
        tid = writer_tid_;
    }
    std::string task = "/proc/self/task/" + std::to_string(tid);
    // Bounded by time, not by a count of sleeps: on a loaded machine the exiting thread may not
    // run again for tens of ms (the stress suite saw 3.13's warning after a 2000 x 10 us wait).
    uint64_t give_up = monotonic_ns() + 1000000000u;  // 1 s; normally gone within microseconds
    while (tid > 0 && ::access(task.c_str(), F_OK) == 0 && monotonic_ns() < give_up) {
        ::usleep(10);
    }
}

void TraceWriter::resume() {
    std::lock_guard<std::mutex> lock(mu_);
    if (pausing_) {
        resume_pending_ = true;
    }
}

void TraceWriter::abandon_after_fork() {
    // The std::thread member refers to a thread that does not exist in this process and the
    // mutex may be locked forever: the caller leaks this object, only the descriptor goes.
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

// ---- ThreadBuffer ----------------------------------------------------------------------------

void ThreadBuffer::attach(TraceWriter* writer, uint64_t thread_id) {
    writer_ = writer;
    thread_id_ = thread_id;
    seq_ = 0;
    flush_ticks_ = writer->ticks_per_second() / 10;  // partial chunks reach the file within 100 ms
    chunk_ = nullptr;
    cur_ = end_ = nullptr;
    last_ = ticks();
    chunk_ticks_ = last_;
    events_ = 0;
}

void ThreadBuffer::refill(uint64_t now) {
    flush();
    if (!writer_) {
        return;
    }
    chunk_ = writer_->acquire();
    chunk_->thread_id = thread_id_;
    chunk_->seq = seq_++;
    chunk_->base_ticks = last_;
    chunk_->events = 0;
    chunk_->used = 0;
    cur_ = chunk_->data;
    end_ = chunk_->data + kChunkCapacity;
    chunk_ticks_ = now;
    events_ = 0;
}

void ThreadBuffer::flush() {
    if (!chunk_) {
        return;
    }
    chunk_->used = static_cast<size_t>(cur_ - chunk_->data);
    chunk_->events = events_;
    Chunk* chunk = chunk_;
    chunk_ = nullptr;
    cur_ = end_ = nullptr;
    events_ = 0;
    if (chunk->used == 0) {
        writer_->release(chunk);
    } else {
        writer_->submit(chunk);
    }
}

void ThreadBuffer::discard_after_fork() {
    // The chunk memory came from the parent's writer; it is simply leaked.
    chunk_ = nullptr;
    cur_ = end_ = nullptr;
    events_ = 0;
    writer_ = nullptr;
}

void ThreadBuffer::detach() {
    flush();
    writer_ = nullptr;
}

uint8_t* ThreadBuffer::reserve(size_t size) {
    uint64_t now = ticks();
    if (static_cast<size_t>(end_ - cur_) < size + 1 + format::kMaxVarint64) {
        refill(now);
    }
    uint8_t* p = cur_;
    return p;
}

static size_t clipped(std::string_view s, size_t limit) { return s.size() < limit ? s.size() : limit; }

void ThreadBuffer::function(uint32_t id, bool is_python, int first_line, uint64_t begin, uint64_t end,
                            std::string_view source_file, std::string_view name,
                            const std::vector<LineRun>& lines, Stamp stamp) {
    size_t file_size = clipped(source_file, 4096);
    size_t name_size = clipped(name, 4096);
    size_t max_runs = (kMaxVariableEvent - file_size - name_size - 128) / 15;
    size_t runs = lines.size() < max_runs ? lines.size() : max_runs;
    size_t size = 1 + 5 * format::kMaxVarint64 + 2 * format::kMaxVarint64 + file_size + name_size +
                  format::kMaxVarint64 + runs * 15;
    uint8_t* p = reserve(size);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::Function);
    p = format::put_varint(p, delta(stamp == Stamp::Now ? ticks() : last_));
    p = format::put_varint(p, id);
    *p++ = is_python ? format::kFunctionIsPython : 0;
    p = format::put_varint(p, format::zigzag(first_line));
    p = format::put_varint(p, begin);
    p = format::put_varint(p, end);
    p = format::put_varint(p, file_size);
    std::memcpy(p, source_file.data(), file_size);
    p += file_size;
    p = format::put_varint(p, name_size);
    std::memcpy(p, name.data(), name_size);
    p += name_size;
    p = format::put_varint(p, runs);
    uint32_t prev_offset = 0;
    int64_t prev_line = first_line;
    for (size_t i = 0; i < runs; ++i) {
        p = format::put_varint(p, lines[i].offset - prev_offset);
        p = format::put_varint(p, format::zigzag(static_cast<int64_t>(lines[i].line) - prev_line));
        prev_offset = lines[i].offset;
        prev_line = lines[i].line;
    }
    commit(p);
}

void ThreadBuffer::mark(format::MarkKind kind, std::string_view text) {
    size_t text_size = clipped(text, kMaxVariableEvent - 64);
    uint8_t* p = reserve(1 + 3 * format::kMaxVarint64 + text_size);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::Mark);
    p = format::put_varint(p, delta(ticks()));
    *p++ = static_cast<uint8_t>(kind);
    p = format::put_varint(p, text_size);
    std::memcpy(p, text.data(), text_size);
    p += text_size;
    commit(p);
}

void ThreadBuffer::thread(bool start) {
    uint8_t* p = reserve(1 + format::kMaxVarint64 + 1);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::Thread);
    p = format::put_varint(p, delta(ticks()));
    *p++ = start ? 1 : 0;
    commit(p);
}

void ThreadBuffer::stack_node(uint64_t node, uint64_t parent, uint64_t frame, int32_t line) {
    uint8_t* p = reserve(1 + 5 * format::kMaxVarint64);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::StackNode);
    p = format::put_varint(p, delta(last_));  // a definition takes no time of its own
    p = format::put_varint(p, node);
    p = format::put_varint(p, parent);
    p = format::put_varint(p, frame);
    p = format::put_varint(p, format::zigzag(line));
    commit(p);
}

void ThreadBuffer::native_symbol(uint32_t id, bool kernel, uint64_t address, std::string_view module,
                                 std::string_view symbol) {
    size_t module_size = clipped(module, 4096);
    size_t symbol_size = clipped(symbol, 4096);
    uint8_t* p = reserve(1 + 6 * format::kMaxVarint64 + module_size + symbol_size);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::NativeSymbol);
    p = format::put_varint(p, delta(last_));
    p = format::put_varint(p, id);
    *p++ = kernel ? format::kSymbolIsKernel : 0;
    p = format::put_varint(p, address);
    p = format::put_varint(p, module_size);
    std::memcpy(p, module.data(), module_size);
    p += module_size;
    p = format::put_varint(p, symbol_size);
    std::memcpy(p, symbol.data(), symbol_size);
    p += symbol_size;
    commit(p);
}

void ThreadBuffer::sample(uint64_t taken_ticks, uint64_t leaf_node, uint8_t flags) {
    uint8_t* p = reserve(1 + 3 * format::kMaxVarint64 + 1);
    if (!p) {
        return;
    }
    *p++ = static_cast<uint8_t>(format::EventTag::Sample);
    p = format::put_varint(p, delta(taken_ticks));
    p = format::put_varint(p, leaf_node);
    *p++ = flags;
    commit(p);
}

}  // namespace etwtrace::trace
