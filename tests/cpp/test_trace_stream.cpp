// reader::TraceStream (what etwtrace.read() streams) against the reference decode
// (reader::decode, sorted): the same events in the same order, with the same timestamps,
// fields and stacks, and the same counters and damage, on the writer's output, on that output
// cut anywhere, and on damaged bytes.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "reader/trace_reader.h"
#include "reader/trace_stream.h"
#include "trace/trace_writer.h"

using namespace etwtrace;

namespace {

// The bytes as a file the stream can read (an anonymous memory file: no temporary path).
std::shared_ptr<const reader::TraceIndex> index_of(const std::vector<uint8_t>& bytes, size_t size, std::string& error) {
    int fd = memfd_create("trace", MFD_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, bytes.data(), size), static_cast<ssize_t>(size));
    return reader::index_fd(fd, "memfd", error);
}

std::vector<uint32_t> stack_of(const reader::TraceStream& s, uint32_t node) {
    std::vector<uint32_t> ids;
    for (; node != reader::kNoNode; node = s.parent(node)) {
        ids.push_back(s.function_id(node));
    }
    return ids;
}

// Whether each thread's events, in file order, have non-decreasing timestamps: then the stream
// is in the reference's order exactly. (Only damage makes a thread's clock step back; such a
// thread's events keep their own order in the stream, where a sort would move them.)
bool threads_in_time_order(const std::vector<uint8_t>& bytes, size_t size) {
    reader::TraceData t;
    reader::ReadOptions unsorted;
    unsorted.sort = false;
    reader::decode(bytes.data(), size, t, unsorted);
    std::vector<uint64_t> last(t.thread_ids.size(), 0);
    for (const reader::Event& e : t.events) {
        if (e.timestamp < last[e.thread]) {
            return false;
        }
        last[e.thread] = e.timestamp;
    }
    return true;
}

// Returns the number of events compared.
size_t expect_same_as_reference(const std::vector<uint8_t>& bytes, size_t size) {
    reader::TraceData t;
    reader::ReadOptions options;
    // In time order (as etwtrace.read() promises), or per thread where damage broke it.
    options.sort = threads_in_time_order(bytes, size);
    const bool read = reader::decode(bytes.data(), size, t, options);
    std::string error;
    auto index = index_of(bytes, size, error);
    EXPECT_EQ(index != nullptr, read) << error;
    if (!index || !read) {
        EXPECT_EQ(error, t.error);
        return 0;
    }
    const reader::TraceIndex& x = *index;
    EXPECT_EQ(x.error, t.error);
    EXPECT_EQ(x.truncated, t.truncated);
    EXPECT_EQ(x.complete, t.complete);
    EXPECT_EQ(x.chunks, t.chunks);
    EXPECT_EQ(x.lost_events, t.lost_events);
    EXPECT_EQ(x.unmatched_pops, t.unmatched_pops);
    EXPECT_EQ(x.sequence_gaps, t.sequence_gaps);
    EXPECT_EQ(x.events, t.events.size());
    EXPECT_EQ(x.thread_ids, t.thread_ids);
    EXPECT_EQ(x.python_version, t.python_version);
    EXPECT_EQ(x.header.pid, t.header.pid);
    EXPECT_EQ(x.header.start_ns, t.header.start_ns);
    EXPECT_EQ(x.functions.size(), t.functions.size());
    for (size_t i = 0; i < x.functions.size() && i < t.functions.size(); ++i) {
        EXPECT_EQ(x.functions[i].id, t.functions[i].id);
        EXPECT_EQ(x.functions[i].name, t.functions[i].name);
        EXPECT_EQ(x.functions[i].line, t.functions[i].line);
    }
    reader::TraceStream s(index);
    reader::StreamEvent e;
    size_t i = 0;
    // Unsorted: the reference's events of each thread, in order, to compare with the stream's.
    std::vector<std::vector<size_t>> per_thread(t.thread_ids.size());
    for (size_t j = 0; j < t.events.size(); ++j) {
        per_thread[t.events[j].thread].push_back(j);
    }
    std::vector<size_t> seen(t.thread_ids.size(), 0);
    while (s.next(e)) {
        if (i >= t.events.size() || e.thread >= per_thread.size() || seen[e.thread] >= per_thread[e.thread].size()) {
            ADD_FAILURE() << "more events than the reference";
            break;
        }
        // Thread by thread: damage that moves a chunk's clock can make the threads' interleaving
        // differ from the reference's sort (a clean file's exact order is the test above).
        const reader::Event& r = t.events[per_thread[e.thread][seen[e.thread]++]];
        EXPECT_EQ(e.timestamp, r.timestamp) << i;
        EXPECT_EQ(x.thread_ids[e.thread], t.thread_ids[r.thread]) << i;
        EXPECT_EQ(e.kind, r.kind) << i;
        if (e.kind == reader::Kind::Push || e.kind == reader::Kind::Pop || e.kind == reader::Kind::Function) {
            EXPECT_EQ(e.function_id, r.function_id) << i;  // (the reference leaves others' stale)
        }
        if (e.kind == reader::Kind::Push) {
            EXPECT_EQ(e.caller, r.caller) << i;
            EXPECT_EQ(e.caller_line, r.caller_line) << i;
        } else if (e.kind == reader::Kind::Mark) {
            EXPECT_EQ(e.mark_kind, r.mark_kind) << i;
            EXPECT_EQ(std::string(e.text), t.marks[r.aux]) << i;
        } else if (e.kind == reader::Kind::Function) {
            EXPECT_EQ(x.functions[e.function].id, t.functions[r.aux].id) << i;
        }
        EXPECT_EQ(stack_of(s, e.stack), t.stack(r.stack)) << i;
        if (testing::Test::HasFailure()) {
            break;
        }
        ++i;
    }
    EXPECT_EQ(s.io_error(), "");
    if (!testing::Test::HasFailure()) {
        EXPECT_EQ(i, t.events.size());
    }
    return i;
}

// Random nesting on four threads through the real writer (TSC ticks and clock sync records
// where the machine has an invariant TSC), marks, a thread left open, chunks interleaved.
std::vector<uint8_t> writer_output(int events_per_thread) {
    const std::string path = "/tmp/etwtrace-test-" + std::to_string(getpid()) + "-stream.etwtrace";
    {
        std::string error;
        trace::TraceWriter::Options options{"test-python 1.0", 0};
        auto writer = trace::TraceWriter::open(path, false, options, error);
        EXPECT_TRUE(writer) << error;
        if (!writer) {
            return {};
        }
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&writer, t, events_per_thread] {
                trace::ThreadBuffer buf;
                buf.attach(writer.get(), 700 + t);
                buf.thread(true);
                for (uint32_t id = 1; id <= 12; ++id) {
                    const int line = 10 * static_cast<int>(id);
                    buf.function(id, id % 3 != 0, line, 0x1000 * id, 0x1000 * id + 0x800, "/src/m.py",
                                 "f" + std::to_string(id), {{0, line}, {8, line + 1}});
                }
                std::mt19937 rng(99 + t);
                std::vector<uint32_t> stack;
                for (int i = 0; i < events_per_thread; ++i) {
                    unsigned r = rng() % 100;
                    if (stack.size() < 30 && (stack.empty() || r < 52)) {
                        uint32_t id = rng() % 12 + 1;
                        buf.push(id, stack.empty() ? 0 : stack.back(), rng() % 16);
                        stack.push_back(id);
                    } else if (r < 98) {
                        buf.pop(stack.back());
                        stack.pop_back();
                    } else {
                        buf.mark(r == 98 ? format::MarkKind::Mark : format::MarkKind::StackSample, "m" + std::to_string(i));
                    }
                }
                if (t != 3) {  // thread 3 leaves its frames open
                    while (!stack.empty()) {
                        buf.pop(stack.back());
                        stack.pop_back();
                    }
                    buf.thread(false);
                }
                buf.detach();
            });
        }
        for (auto& th : threads) {
            th.join();
        }
        writer->finish();
    }
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    std::remove(path.c_str());
    return bytes;
}

}  // namespace

TEST(TraceStream, EqualsTheReferenceOnTheWritersOutput) {
    std::vector<uint8_t> bytes = writer_output(15000);
    ASSERT_FALSE(bytes.empty());
    EXPECT_GT(expect_same_as_reference(bytes, bytes.size()), 50000u);
    // Cut anywhere: truncated tails and half-written chunks read up to the damage.
    for (size_t cut = 0; cut < bytes.size() && !testing::Test::HasFailure(); cut += bytes.size() / 7 + 1) {
        expect_same_as_reference(bytes, cut);
    }
}

TEST(TraceStream, DamagedBytesMatchTheReference) {
    std::vector<uint8_t> clean = writer_output(300);
    ASSERT_FALSE(clean.empty());
    std::mt19937_64 rng(11);
    const size_t header = format::kFixedHeaderSize + 15;
    for (int round = 0; round < 400 && !testing::Test::HasFailure(); ++round) {
        std::vector<uint8_t> data = clean;
        for (int flips = 0; flips < 1 + round % 3; ++flips) {
            data[header + rng() % (data.size() - header)] ^= static_cast<uint8_t>(1u << (rng() % 8));
        }
        expect_same_as_reference(data, data.size());
    }
}

TEST(TraceStream, StacksBeforeAnInstant) {
    std::vector<uint8_t> bytes = writer_output(2000);
    reader::TraceData t;
    ASSERT_TRUE(reader::decode(bytes.data(), bytes.size(), t));
    std::string error;
    auto index = index_of(bytes, bytes.size(), error);
    ASSERT_TRUE(index) << error;
    reader::TraceStream s(index);
    // Each thread's stack just before every 50th event's instant: the reference's stack after
    // the last event of that thread earlier than it.
    for (size_t i = 0; i < t.events.size(); i += 50) {
        const uint64_t when = t.events[i].timestamp;
        s.skip_before(when);
        for (uint32_t thread = 0; thread < t.thread_ids.size(); ++thread) {
            std::vector<uint32_t> expected;
            for (size_t j = i; j-- > 0;) {
                const reader::Event& r = t.events[j];
                if (r.thread == thread && r.timestamp < when) {
                    expected = t.stack(r.stack);
                    if (r.kind == reader::Kind::Pop && !expected.empty() && expected[0] == r.function_id) {
                        expected.erase(expected.begin());  // a pop's stack still has its function
                    }
                    break;
                }
            }
            ASSERT_EQ(stack_of(s, s.top(thread)), expected) << i << " thread " << thread;
        }
    }
}

TEST(TraceStream, MissingFileAndBadHeader) {
    std::string error;
    EXPECT_FALSE(reader::index_file("/nonexistent/x.etwtrace", error));
    EXPECT_NE(error.find("No such file"), std::string::npos) << error;
    std::vector<uint8_t> junk = {'n', 'o', 'p', 'e', 0, 0, 0, 0, 0, 0};
    error.clear();
    EXPECT_FALSE(index_of(junk, junk.size(), error));
    EXPECT_EQ(error, "not an etwtrace trace file");
    std::vector<uint8_t> empty;
    error.clear();
    EXPECT_FALSE(index_of(empty, 0, error));
    EXPECT_EQ(error, "truncated header");
}
