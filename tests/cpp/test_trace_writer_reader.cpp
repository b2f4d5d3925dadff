// Writer and reader together: what ThreadBuffer encodes, reader::decode gives back, across
// threads, under backpressure, and from a file cut at any point.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "reader/trace_reader.h"
#include "trace/trace_writer.h"

using namespace etwtrace;

namespace {

std::string temp_path(const char* name) {
    return std::string("/tmp/etwtrace-test-") + std::to_string(getpid()) + "-" + name + ".etwtrace";
}

std::unique_ptr<trace::TraceWriter> open_writer(const std::string& path) {
    std::string error;
    trace::TraceWriter::Options options{"test-python 1.0", 0};
    auto writer = trace::TraceWriter::open(path, false, options, error);
    EXPECT_TRUE(writer) << error;
    return writer;
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

size_t threads_in_process() {
    size_t n = 0;
    DIR* dir = opendir("/proc/self/task");
    while (dir && readdir(dir)) {
        ++n;
    }
    if (dir) {
        closedir(dir);
    }
    return n - 2;  // "." and ".."
}

}  // namespace

// Around fork(): paused, the writer thread is gone; it comes back only at the first chunk after
// resume(), and a pause() before that chunk cancels the resume (a second fork right after the
// first); without any resume() it comes back once the queue holds kMaxQueuedChunks.
TEST(TraceWriterReader, PausedWriterThreadStaysGoneUntilResumed) {
    std::string path = temp_path("pause");
    size_t before = threads_in_process();
    {
        auto writer = open_writer(path);
        EXPECT_EQ(threads_in_process(), before + 1);
        trace::ThreadBuffer buf;
        buf.attach(writer.get(), 5);
        auto send_chunk = [&buf](uint32_t id) {
            buf.push(id, 0, 0);
            buf.pop(id);
            buf.flush();
        };
        writer->pause();
        EXPECT_EQ(threads_in_process(), before);
        send_chunk(1);  // in the hooks after fork(): queued, no thread
        EXPECT_EQ(threads_in_process(), before);
        writer->resume();
        writer->pause();  // forks again before any chunk
        send_chunk(2);
        EXPECT_EQ(threads_in_process(), before);
        writer->resume();
        send_chunk(3);  // fork() has returned: the thread is back
        EXPECT_EQ(threads_in_process(), before + 1);
        writer->pause();
        for (uint32_t i = 0; i < trace::kMaxQueuedChunks + 1; ++i) {
            send_chunk(10 + i);
        }
        EXPECT_EQ(threads_in_process(), before + 1);  // never resumed: restarted at the bound
        buf.detach();
        writer->finish();
        EXPECT_EQ(writer->lost_events(), 0u);
    }
    reader::TraceData t;
    ASSERT_TRUE(reader::read_file(path, t));
    EXPECT_TRUE(t.complete);
    EXPECT_EQ(t.events.size(), (3 + trace::kMaxQueuedChunks + 1) * 2);
    EXPECT_EQ(t.sequence_gaps, 0u);
    std::remove(path.c_str());
}

TEST(TraceWriterReader, RoundTripOneThread) {
    std::string path = temp_path("roundtrip");
    {
        auto writer = open_writer(path);
        trace::ThreadBuffer buf;
        buf.attach(writer.get(), 77);
        buf.thread(true);
        buf.function(1, true, 10, 0, 0, "/src/a.py", "outer", {{0, 10}, {8, 11}, {20, 13}});
        buf.function(2, false, 0, 0, 0, "builtins", "len", {});
        buf.push(1, 0, 0);
        buf.mark(format::MarkKind::StackSample, "here");
        buf.push(2, 1, 22);
        buf.pop(2);
        buf.pop(1);
        buf.mark(format::MarkKind::RangeStart, "range");
        buf.thread(false);
        buf.detach();
        writer->finish();
    }
    reader::TraceData t;
    ASSERT_TRUE(reader::read_file(path, t)) << t.error;
    EXPECT_TRUE(t.complete);
    EXPECT_FALSE(t.truncated);
    EXPECT_EQ(t.error, "");
    EXPECT_EQ(t.header.pid, static_cast<uint32_t>(getpid()));
    EXPECT_EQ(t.python_version, "test-python 1.0");
    ASSERT_EQ(t.events.size(), 10u);
    ASSERT_EQ(t.functions.size(), 2u);
    EXPECT_EQ(t.functions[0].name, "outer");
    EXPECT_EQ(t.functions[0].line_at(0), 10);
    EXPECT_EQ(t.functions[0].line_at(9), 11);
    EXPECT_EQ(t.functions[0].line_at(400), 13);
    EXPECT_FALSE(t.functions[1].is_python);
    const reader::Event& sample = t.events[4];
    EXPECT_EQ(sample.kind, reader::Kind::Mark);
    EXPECT_EQ(sample.mark_kind, 3);
    EXPECT_EQ(t.marks[sample.aux], "here");
    EXPECT_EQ(t.stack(sample.stack), std::vector<uint32_t>{1});
    const reader::Event& inner = t.events[5];
    EXPECT_EQ(inner.kind, reader::Kind::Push);
    EXPECT_EQ(inner.caller, 1u);
    EXPECT_EQ(inner.caller_line, 13);  // offset 22 falls in the run starting at 20
    EXPECT_EQ(t.stack(inner.stack), (std::vector<uint32_t>{2, 1}));
    EXPECT_EQ(t.unmatched_pops, 0u);
    EXPECT_EQ(t.thread_ids, std::vector<uint64_t>{77});
    for (size_t i = 1; i < t.events.size(); ++i) {
        EXPECT_LE(t.events[i - 1].timestamp, t.events[i].timestamp);
    }
    EXPECT_GE(t.events.front().timestamp, t.header.start_ns);
    std::remove(path.c_str());
}

TEST(TraceWriterReader, ManyThreadsUnderBackpressureLoseNothing) {
    std::string path = temp_path("threads");
    constexpr int kThreads = 4;
    constexpr uint32_t kPairs = 400000;  // 3.2 M events: far more than the queue holds
    {
        auto writer = open_writer(path);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&writer, t] {
                trace::ThreadBuffer buf;
                buf.attach(writer.get(), 1000 + t);
                for (uint32_t i = 0; i < kPairs; ++i) {
                    buf.push(i % 100 + 1, 0, i);
                    buf.pop(i % 100 + 1);
                }
                buf.detach();
            });
        }
        for (auto& th : threads) {
            th.join();
        }
        writer->finish();
        EXPECT_EQ(writer->lost_events(), 0u);
    }
    reader::TraceData t;
    ASSERT_TRUE(reader::read_file(path, t));
    EXPECT_TRUE(t.complete);
    EXPECT_EQ(t.events.size(), static_cast<size_t>(kThreads) * kPairs * 2);
    EXPECT_EQ(t.unmatched_pops, 0u);
    EXPECT_EQ(t.sequence_gaps, 0u);
    EXPECT_EQ(t.lost_events, 0u);
    EXPECT_EQ(t.thread_ids.size(), static_cast<size_t>(kThreads));
    for (size_t i = 1; i < t.events.size(); ++i) {
        ASSERT_LE(t.events[i - 1].timestamp, t.events[i].timestamp);
    }
    std::remove(path.c_str());
}

TEST(TraceWriterReader, EveryTruncationIsReadableUpToLastRecord) {
    std::string path = temp_path("truncate");
    {
        auto writer = open_writer(path);
        trace::ThreadBuffer buf;
        buf.attach(writer.get(), 5);
        for (uint32_t i = 0; i < 60000; ++i) {  // several chunks
            buf.push(1, 0, 0);
            buf.pop(1);
        }
        buf.detach();
        writer->finish();
    }
    std::vector<uint8_t> bytes = slurp(path);
    reader::TraceData full;
    ASSERT_TRUE(reader::decode(bytes.data(), bytes.size(), full));
    size_t previous = 0;
    for (size_t cut = full.header.header_size; cut < bytes.size(); cut += bytes.size() / 97 + 1) {
        reader::TraceData t;
        ASSERT_TRUE(reader::decode(bytes.data(), cut, t));
        EXPECT_LE(t.events.size(), full.events.size());
        EXPECT_FALSE(t.complete);
        EXPECT_EQ(t.error, "");
        EXPECT_EQ(t.unmatched_pops, 0u);
        EXPECT_GE(t.events.size(), previous);
        previous = t.events.size();
    }
    std::remove(path.c_str());
}

TEST(TraceWriterReader, RefusesToOverwriteOrFollowLinks) {
    std::string path = temp_path("excl");
    { std::ofstream(path) << "user data"; }
    std::string error;
    trace::TraceWriter::Options options{"x", 0};
    EXPECT_FALSE(trace::TraceWriter::open(path, true, options, error));
    std::string link = temp_path("link");
    ASSERT_EQ(symlink(path.c_str(), link.c_str()), 0);
    EXPECT_FALSE(trace::TraceWriter::open(link, false, options, error));  // O_NOFOLLOW
    std::ifstream in(path);
    std::string content;
    std::getline(in, content);
    EXPECT_EQ(content, "user data");
    std::remove(link.c_str());
    std::remove(path.c_str());
}

TEST(TraceWriterReader, ChildPathBesideUserPath) {
    std::string dir = "/tmp/etwtrace-test-dir-" + std::to_string(getpid());
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    std::string error;
    trace::TraceWriter::Options options{"x", 1};
    auto w = trace::TraceWriter::open_beside(dir + "/run.etwtrace", options, error);
    ASSERT_TRUE(w) << error;
    EXPECT_EQ(w->path(), dir + "/run-" + std::to_string(getpid()) + ".etwtrace");
    w->finish();
    auto d1 = trace::TraceWriter::open_in_directory(dir, options, error);
    auto d2 = trace::TraceWriter::open_in_directory(dir, options, error);
    ASSERT_TRUE(d1 && d2);
    EXPECT_EQ(d1->path(), dir + "/etwtrace-" + std::to_string(getpid()) + ".etwtrace");
    EXPECT_EQ(d2->path(), dir + "/etwtrace-" + std::to_string(getpid()) + "-1.etwtrace");
    d1->finish();
    d2->finish();
    for (const std::string& p : {w->path(), d1->path(), d2->path()}) {
        std::remove(p.c_str());
    }
    rmdir(dir.c_str());
}

TEST(TraceReader, DecodeRate) {
    // Not a timed assertion (the machine is shared): prints the decoder's rate for the notes.
    std::string path = temp_path("rate");
    constexpr uint32_t kPairs = 2000000;
    {
        auto writer = open_writer(path);
        trace::ThreadBuffer buf;
        buf.attach(writer.get(), 9);
        for (uint32_t i = 0; i < kPairs; ++i) {
            buf.push(i % 1000 + 1, 0, i % 300);
            buf.pop(i % 1000 + 1);
        }
        buf.detach();
        writer->finish();
    }
    reader::ReadOptions options;
    options.sort = false;
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        reader::TraceData t;
        auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(reader::read_file(path, t, options));
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s);
        ASSERT_EQ(t.events.size(), 2u * kPairs);
    }
    std::printf("reader: %.1f M events/s\n", 2.0 * kPairs / best / 1e6);
    std::remove(path.c_str());
}
