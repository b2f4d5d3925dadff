// The reader on hostile input: random and mutated bytes must never crash or hang it.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "reader/trace_reader.h"
#include "trace/trace_writer.h"

using namespace etwtrace;

TEST(TraceReaderRobustness, RandomAndMutatedInput) {
    std::mt19937_64 rng(1234);
    // A valid header followed by garbage, and byte flips of a valid small trace.
    format::FileHeader h;
    h.python_version = "x";
    std::vector<uint8_t> head(format::kFixedHeaderSize + 1);
    format::encode_header(h, head.data());
    for (int round = 0; round < 2000; ++round) {
        std::vector<uint8_t> data = head;
        size_t extra = rng() % 512;
        for (size_t i = 0; i < extra; ++i) {
            data.push_back(static_cast<uint8_t>(rng()));
        }
        if (round % 2) {
            data[rng() % data.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
        }
        reader::TraceData t;
        reader::decode(data.data(), data.size(), t);
        for (const auto& e : t.events) {
            (void)t.stack(e.stack);
        }
    }
    SUCCEED();
}

TEST(TraceReaderRobustness, HugeTickValuesDoNotOverflowTheClockConversion) {
    // Regression (found by the fuzzer): a tick far from every sync point made the double ->
    // integer nanosecond conversion overflow.
    format::FileHeader h;
    h.tick_kind = format::TickKind::Tsc;
    h.ticks_per_second = 1;  // 1e9 ns per tick
    h.python_version = "x";
    std::vector<uint8_t> data(format::kFixedHeaderSize + 1);
    format::encode_header(h, data.data());
    uint8_t payload[64];
    uint8_t* p = payload;
    p = format::put_varint(p, 1);                     // thread id
    p = format::put_varint(p, 0);                     // seq
    p = format::put_varint(p, uint64_t{1} << 62);     // base ticks
    *p++ = static_cast<uint8_t>(format::EventTag::Thread);
    p = format::put_varint(p, 0);
    *p++ = 1;
    data.push_back(static_cast<uint8_t>(format::RecordType::Chunk));
    uint8_t size[10];
    uint8_t* s = format::put_varint(size, static_cast<uint64_t>(p - payload));
    data.insert(data.end(), size, s);
    data.insert(data.end(), payload, p);
    reader::TraceData t;
    ASSERT_TRUE(reader::decode(data.data(), data.size(), t));
    ASSERT_EQ(t.events.size(), 1u);
    EXPECT_EQ(t.events[0].timestamp, ~uint64_t{0});
}
