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
