// reader::aggregate against hand-computed figures and against the full reader: every total
// the aggregator gives must equal what summing over reader::decode's events gives.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "reader/trace_aggregate.h"
#include "reader/trace_reader.h"
#include "trace/trace_writer.h"

using namespace etwtrace;

namespace {

// ---- a trace built byte by byte (ticks are nanoseconds: exact expected figures) ------------

struct Bytes {
    std::vector<uint8_t> data;
    void varint(uint64_t v) {
        uint8_t buf[10];
        data.insert(data.end(), buf, format::put_varint(buf, v));
    }
    void u8(uint8_t v) { data.push_back(v); }
    void string(std::string_view s) {
        varint(s.size());
        data.insert(data.end(), s.begin(), s.end());
    }
};

struct ChunkBuilder {
    Bytes body;
    uint64_t last;
    ChunkBuilder(uint64_t tid, uint64_t seq, uint64_t base) : last(base) {
        body.varint(tid);
        body.varint(seq);
        body.varint(base);
    }
    void at(uint8_t tag, uint64_t t) {
        body.u8(tag);
        body.varint(t - last);
        last = t;
    }
    void push(uint64_t t, uint32_t id, uint32_t caller = 0) {
        at(1, t);
        body.varint(id);
        body.varint(caller);
        body.varint(0);
    }
    void pop(uint64_t t, uint32_t id) {
        at(2, t);
        body.varint(id);
    }
    void function(uint64_t t, uint32_t id, std::string_view name) {
        at(3, t);
        body.varint(id);
        body.u8(1);
        body.varint(format::zigzag(1));
        body.varint(0);
        body.varint(0);
        body.string("/src/app.py");
        body.string(name);
        body.varint(0);
    }
    void mark(uint64_t t, uint8_t kind, std::string_view text) {
        at(4, t);
        body.u8(kind);
        body.string(text);
    }
};

struct FileBuilder {
    Bytes out;
    FileBuilder() {
        format::FileHeader h;
        h.python_version = "test";
        h.start_ns = 1;
        out.data.resize(format::kFixedHeaderSize + 4);
        format::encode_header(h, out.data.data());
    }
    void record(format::RecordType type, const Bytes& payload) {
        out.u8(static_cast<uint8_t>(type));
        out.varint(payload.data.size());
        out.data.insert(out.data.end(), payload.data.begin(), payload.data.end());
    }
    void chunk(const ChunkBuilder& c) { record(format::RecordType::Chunk, c.body); }
    void end() {
        Bytes b;
        b.varint(3);
        b.varint(0);
        b.varint(0);
        record(format::RecordType::End, b);
    }
};

const reader::AggregateNode* node_at(const reader::TraceAggregate& a, uint64_t tid, std::vector<uint32_t> leaf_first) {
    for (uint32_t i = 0; i < a.nodes.size(); ++i) {
        if (a.thread_ids[a.nodes[i].thread] == tid && a.stack(i) == leaf_first) {
            return &a.nodes[i];
        }
    }
    return nullptr;
}

const reader::FunctionTotals* totals_of(const reader::TraceAggregate& a, uint32_t id) {
    for (const auto& [fid, t] : a.function_totals) {
        if (fid == id) {
            return &t;
        }
    }
    return nullptr;
}

// ---- the oracle: the same figures summed over the full reader's events ----------------------

using StackKey = std::pair<uint64_t, std::vector<uint32_t>>;  // (thread id, stack leaf first)
struct Expected {
    std::map<StackKey, std::tuple<uint64_t, uint64_t, uint64_t>> stacks;  // calls, self, inclusive
    std::map<uint32_t, std::tuple<uint64_t, uint64_t, uint64_t>> functions;  // calls, inclusive, exclusive
    uint64_t first = 0, last = 0, open = 0;
};

Expected expected_from_reader(const reader::TraceData& t) {
    Expected x;
    if (!t.events.empty()) {
        x.first = ~uint64_t{0};
        for (const reader::Event& e : t.events) {
            x.first = std::min(x.first, e.timestamp);
            x.last = std::max(x.last, e.timestamp);
        }
    }
    struct Open {
        uint32_t node, id;
        uint64_t start, child;
    };
    std::map<uint32_t, std::vector<Open>> stacks;  // by thread index
    auto close = [&](uint32_t thread, uint64_t end) {
        std::vector<Open>& s = stacks[thread];
        Open o = s.back();
        s.pop_back();
        uint64_t d = end > o.start ? end - o.start : 0;
        uint64_t self = d > o.child ? d - o.child : 0;
        auto& [calls, self_ns, incl] = x.stacks[{t.thread_ids[thread], t.stack(o.node)}];
        ++calls, self_ns += self, incl += d;
        auto& [fcalls, fincl, fexcl] = x.functions[o.id];
        ++fcalls, fexcl += self;
        bool outermost = true;
        for (const Open& below : s) {
            outermost = outermost && below.id != o.id;
        }
        if (outermost) {
            fincl += d;
        }
        if (!s.empty()) {
            s.back().child += d;
        }
    };
    for (const reader::Event& e : t.events) {
        if (e.kind == reader::Kind::Push) {
            stacks[e.thread].push_back(Open{e.stack, e.function_id, e.timestamp, 0});
        } else if (e.kind == reader::Kind::Pop) {
            auto& s = stacks[e.thread];
            if (!s.empty() && s.back().id == e.function_id) {
                close(e.thread, e.timestamp);
            }
        }
    }
    for (auto& [thread, s] : stacks) {
        while (!s.empty()) {
            close(thread, x.last);
            ++x.open;
        }
    }
    return x;
}

void expect_same_as_reader(const uint8_t* data, size_t size) {
    reader::TraceData t;
    reader::ReadOptions unsorted;
    unsorted.sort = false;  // per-thread order is all the oracle needs
    bool read = reader::decode(data, size, t, unsorted);
    reader::TraceAggregate a;
    ASSERT_EQ(reader::aggregate(data, size, a), read);
    EXPECT_EQ(a.error, t.error);
    EXPECT_EQ(a.truncated, t.truncated);
    if (!read) {
        return;
    }
    EXPECT_EQ(a.events, t.events.size());
    EXPECT_EQ(a.chunks, t.chunks);
    EXPECT_EQ(a.lost_events, t.lost_events);
    EXPECT_EQ(a.unmatched_pops, t.unmatched_pops);
    EXPECT_EQ(a.sequence_gaps, t.sequence_gaps);
    EXPECT_EQ(a.complete, t.complete);
    EXPECT_EQ(a.thread_ids, t.thread_ids);
    EXPECT_EQ(a.python_version, t.python_version);
    ASSERT_EQ(a.functions.size(), t.functions.size());
    for (size_t i = 0; i < a.functions.size(); ++i) {
        EXPECT_EQ(a.functions[i].id, t.functions[i].id);
        EXPECT_EQ(a.functions[i].name, t.functions[i].name);
    }
    size_t marks = 0;
    for (const reader::Event& e : t.events) {
        marks += e.kind == reader::Kind::Mark;
    }
    EXPECT_EQ(a.marks.size(), marks);

    Expected x = expected_from_reader(t);
    EXPECT_EQ(a.first_ns, x.first);
    EXPECT_EQ(a.last_ns, x.last);
    EXPECT_EQ(a.open_frames, x.open);
    std::map<StackKey, std::tuple<uint64_t, uint64_t, uint64_t>> stacks;
    for (uint32_t i = 0; i < a.nodes.size(); ++i) {
        const reader::AggregateNode& n = a.nodes[i];
        EXPECT_TRUE(n.parent == reader::kNoNode || n.parent < i);
        EXPECT_TRUE(n.parent == reader::kNoNode || a.nodes[n.parent].thread == n.thread);
        auto [it, added] = stacks.emplace(StackKey{a.thread_ids[n.thread], a.stack(i)},
                                          std::make_tuple(n.calls, n.self_ns, n.inclusive_ns));
        EXPECT_TRUE(added) << "two nodes for one stack";
    }
    EXPECT_EQ(stacks, x.stacks);
    std::map<uint32_t, std::tuple<uint64_t, uint64_t, uint64_t>> functions;
    for (const auto& [id, f] : a.function_totals) {
        functions[id] = {f.calls, f.inclusive_ns, f.exclusive_ns};
    }
    EXPECT_EQ(functions, x.functions);
}

std::string temp_path(const char* name) {
    return std::string("/tmp/etwtrace-test-") + std::to_string(getpid()) + "-" + name + ".etwtrace";
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(TraceAggregate, HandComputedFigures) {
    FileBuilder f;
    ChunkBuilder a(10, 0, 100);
    a.function(100, 1, "outer");
    a.function(100, 2, "inner");
    a.push(100, 1);          // outer                      [100, 300]
    a.push(150, 2, 1);       //   inner                    [150, 180]
    a.pop(180, 2);
    a.mark(190, 3, "here");
    a.push(200, 1, 1);       //   outer (recursive)        [200, 260]
    f.chunk(a);
    ChunkBuilder b(20, 0, 120);
    b.push(120, 2);          // thread 20: inner, open at the end
    b.pop(130, 1);           // unmatched: not the top
    f.chunk(b);
    ChunkBuilder a2(10, 1, 200);
    a2.pop(260, 1);
    a2.pop(300, 1);
    f.chunk(a2);
    f.end();

    reader::TraceAggregate r;
    ASSERT_TRUE(reader::aggregate(f.out.data.data(), f.out.data.size(), r)) << r.error;
    EXPECT_EQ(r.error, "");
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.thread_ids, (std::vector<uint64_t>{10, 20}));
    EXPECT_EQ(r.events, 11u);
    EXPECT_EQ(r.unmatched_pops, 1u);
    EXPECT_EQ(r.open_frames, 1u);
    EXPECT_EQ(r.first_ns, 100u);
    EXPECT_EQ(r.last_ns, 300u);
    ASSERT_EQ(r.nodes.size(), 4u);

    const reader::AggregateNode* outer = node_at(r, 10, {1});
    const reader::AggregateNode* inner = node_at(r, 10, {2, 1});
    const reader::AggregateNode* recursive = node_at(r, 10, {1, 1});
    const reader::AggregateNode* other = node_at(r, 20, {2});
    ASSERT_TRUE(outer && inner && recursive && other);
    EXPECT_EQ(std::make_tuple(outer->calls, outer->self_ns, outer->inclusive_ns), std::make_tuple(1u, 110u, 200u));
    EXPECT_EQ(std::make_tuple(inner->calls, inner->self_ns, inner->inclusive_ns), std::make_tuple(1u, 30u, 30u));
    EXPECT_EQ(std::make_tuple(recursive->calls, recursive->self_ns, recursive->inclusive_ns),
              std::make_tuple(1u, 60u, 60u));
    EXPECT_EQ(std::make_tuple(other->calls, other->self_ns, other->inclusive_ns), std::make_tuple(1u, 180u, 180u));

    const reader::FunctionTotals* f1 = totals_of(r, 1);
    const reader::FunctionTotals* f2 = totals_of(r, 2);
    ASSERT_TRUE(f1 && f2);
    EXPECT_EQ(std::make_tuple(f1->calls, f1->inclusive_ns, f1->exclusive_ns), std::make_tuple(2u, 200u, 170u));
    EXPECT_EQ(std::make_tuple(f2->calls, f2->inclusive_ns, f2->exclusive_ns), std::make_tuple(2u, 210u, 210u));

    ASSERT_EQ(r.marks.size(), 1u);
    EXPECT_EQ(r.marks[0].timestamp, 190u);
    EXPECT_EQ(r.marks[0].kind, 3u);
    EXPECT_EQ(r.marks[0].text, "here");
    ASSERT_EQ(r.functions.size(), 2u);
    EXPECT_EQ(r.functions[1].name, "inner");

    expect_same_as_reader(f.out.data.data(), f.out.data.size());
}

TEST(TraceAggregate, ClippedToTimeSpans) {
    // HandComputedFigures' trace, kept only in [150, 270]: calls count when they end inside,
    // times only as far as they are inside.
    FileBuilder f;
    ChunkBuilder a(10, 0, 100);
    a.function(100, 1, "outer");
    a.function(100, 2, "inner");
    a.push(100, 1);     // outer [100, 300]: ends outside
    a.push(150, 2, 1);  // inner [150, 180]
    a.pop(180, 2);
    a.push(200, 1, 1);  // outer (recursive) [200, 260]
    a.pop(260, 1);
    a.pop(300, 1);
    f.chunk(a);
    ChunkBuilder b(20, 0, 120);
    b.push(120, 2);     // thread 20: inner, open at the end (closed at 300)
    b.pop(130, 1);      // unmatched
    f.chunk(b);
    f.end();
    const std::vector<reader::TimeSpan> spans{{150, 270}};
    reader::TraceAggregate r;
    ASSERT_TRUE(reader::aggregate(f.out.data.data(), f.out.data.size(), r, nullptr, &spans)) << r.error;
    const reader::AggregateNode* outer = node_at(r, 10, {1});
    const reader::AggregateNode* inner = node_at(r, 10, {2, 1});
    const reader::AggregateNode* recursive = node_at(r, 10, {1, 1});
    const reader::AggregateNode* other = node_at(r, 20, {2});
    ASSERT_TRUE(outer && inner && recursive && other);
    EXPECT_EQ(std::make_tuple(outer->calls, outer->self_ns, outer->inclusive_ns), std::make_tuple(0u, 30u, 120u));
    EXPECT_EQ(std::make_tuple(inner->calls, inner->self_ns, inner->inclusive_ns), std::make_tuple(1u, 30u, 30u));
    EXPECT_EQ(std::make_tuple(recursive->calls, recursive->self_ns, recursive->inclusive_ns),
              std::make_tuple(1u, 60u, 60u));
    EXPECT_EQ(std::make_tuple(other->calls, other->self_ns, other->inclusive_ns), std::make_tuple(0u, 120u, 120u));
    const reader::FunctionTotals* f1 = totals_of(r, 1);
    const reader::FunctionTotals* f2 = totals_of(r, 2);
    ASSERT_TRUE(f1 && f2);
    EXPECT_EQ(std::make_tuple(f1->calls, f1->inclusive_ns, f1->exclusive_ns), std::make_tuple(1u, 120u, 90u));
    EXPECT_EQ(std::make_tuple(f2->calls, f2->inclusive_ns, f2->exclusive_ns), std::make_tuple(1u, 150u, 150u));
    // A span over everything: the unclipped figures.
    const std::vector<reader::TimeSpan> all{{0, ~uint64_t{0}}};
    reader::TraceAggregate whole, clipped;
    ASSERT_TRUE(reader::aggregate(f.out.data.data(), f.out.data.size(), whole));
    ASSERT_TRUE(reader::aggregate(f.out.data.data(), f.out.data.size(), clipped, nullptr, &all));
    ASSERT_EQ(whole.nodes.size(), clipped.nodes.size());
    for (size_t i = 0; i < whole.nodes.size(); ++i) {
        EXPECT_EQ(std::make_tuple(whole.nodes[i].calls, whole.nodes[i].self_ns, whole.nodes[i].inclusive_ns),
                  std::make_tuple(clipped.nodes[i].calls, clipped.nodes[i].self_ns, clipped.nodes[i].inclusive_ns));
    }
}

TEST(TraceAggregate, EqualsTheReaderOnTheWritersOutput) {
    // Random nesting (recursion included) on three threads, through the real writer (TSC
    // ticks and clock sync records when the machine has an invariant TSC), with marks.
    std::string path = temp_path("aggregate");
    {
        std::string error;
        trace::TraceWriter::Options options{"test-python 1.0", 0};
        auto writer = trace::TraceWriter::open(path, false, options, error);
        ASSERT_TRUE(writer) << error;
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&writer, t] {
                trace::ThreadBuffer buf;
                buf.attach(writer.get(), 500 + t);
                buf.thread(true);
                for (uint32_t id = 1; id <= 12; ++id) {
                    buf.function(id, true, 1, 0, 0, "/src/m.py", "f" + std::to_string(id), {});
                }
                std::mt19937 rng(42 + t);
                std::vector<uint32_t> stack;
                for (int i = 0; i < 40000; ++i) {
                    unsigned r = rng() % 100;
                    if (stack.size() < 30 && (stack.empty() || r < 52)) {
                        uint32_t id = rng() % 12 + 1;
                        buf.push(id, stack.empty() ? 0 : stack.back(), 0);
                        stack.push_back(id);
                    } else if (r < 99) {
                        buf.pop(stack.back());
                        stack.pop_back();
                    } else {
                        buf.mark(format::MarkKind::Mark, "m");
                    }
                }
                if (t == 2) {
                    buf.detach();  // leaves its frames open
                    return;
                }
                while (!stack.empty()) {
                    buf.pop(stack.back());
                    stack.pop_back();
                }
                buf.thread(false);
                buf.detach();
            });
        }
        for (auto& th : threads) {
            th.join();
        }
        writer->finish();
    }
    std::vector<uint8_t> bytes = slurp(path);
    expect_same_as_reader(bytes.data(), bytes.size());
    reader::TraceAggregate a;
    ASSERT_TRUE(reader::aggregate_file(path, a)) << a.error;
    EXPECT_GT(a.open_frames, 0u);
    EXPECT_EQ(a.unmatched_pops, 0u);
    EXPECT_LT(a.nodes.size(), a.events / 2);  // stacks repeat: far fewer nodes than pushes
    // Cut anywhere: still the same as the reader (truncated tails, half-written chunks).
    for (size_t cut = 0; cut < bytes.size(); cut += bytes.size() / 7 + 1) {
        expect_same_as_reader(bytes.data(), cut);
    }
    std::remove(path.c_str());
}

TEST(TraceAggregate, DamagedInputMatchesTheReader) {
    FileBuilder f;
    ChunkBuilder a(1, 0, 10);
    a.function(10, 1, "f");
    for (int i = 0; i < 50; ++i) {
        a.push(20 + 4 * i, 1);
        a.mark(21 + 4 * i, 0, "x");
    }
    f.chunk(a);
    f.end();
    std::mt19937_64 rng(7);
    for (int round = 0; round < 3000; ++round) {
        std::vector<uint8_t> data = f.out.data;
        for (int flips = 0; flips < 1 + round % 3; ++flips) {
            data[format::kFixedHeaderSize + 4 + rng() % (data.size() - format::kFixedHeaderSize - 4)] ^=
                static_cast<uint8_t>(1u << (rng() % 8));
        }
        expect_same_as_reader(data.data(), data.size());
        if (testing::Test::HasFailure()) {
            break;
        }
    }
}

TEST(TraceAggregate, MissingFileAndBadHeader) {
    reader::TraceAggregate a;
    EXPECT_FALSE(reader::aggregate_file("/nonexistent/x.etwtrace", a));
    EXPECT_NE(a.error, "");
    const uint8_t junk[16] = {'n', 'o', 'p', 'e'};
    EXPECT_FALSE(reader::aggregate(junk, sizeof junk, a));
    EXPECT_EQ(a.error, "not an etwtrace trace file");
}
