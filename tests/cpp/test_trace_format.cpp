// The trace format's building blocks: varints, zigzag, header encoding and its validation.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "format/trace_format.h"

using namespace etwtrace::format;

TEST(TraceFormat, VarintRoundTrip) {
    const uint64_t values[] = {0, 1, 127, 128, 300, 16383, 16384, 0xffffffffu, 1ull << 35,
                               std::numeric_limits<uint64_t>::max()};
    for (uint64_t v : values) {
        uint8_t buf[kMaxVarint64];
        uint8_t* end = put_varint(buf, v);
        ASSERT_LE(end - buf, static_cast<long>(kMaxVarint64));
        Cursor c{buf, end};
        uint64_t out = 0;
        ASSERT_TRUE(c.varint(out));
        EXPECT_EQ(out, v);
        EXPECT_EQ(c.pos, end);
    }
}

TEST(TraceFormat, VarintRejectsTruncatedAndOverlong) {
    uint8_t buf[kMaxVarint64];
    uint8_t* end = put_varint(buf, 1ull << 40);
    uint64_t out = 0;
    Cursor cut{buf, end - 1};
    EXPECT_FALSE(cut.varint(out));
    uint8_t overlong[11];
    for (auto& b : overlong) {
        b = 0x80;
    }
    Cursor c{overlong, overlong + sizeof(overlong)};
    EXPECT_FALSE(c.varint(out));
    uint8_t big[kMaxVarint64];
    Cursor c32{big, put_varint(big, 1ull << 33)};
    uint32_t small = 0;
    EXPECT_FALSE(c32.varint32(small));
}

TEST(TraceFormat, Zigzag) {
    for (int64_t v : {0ll, 1ll, -1ll, 63ll, -64ll, 1ll << 40, -(1ll << 40)}) {
        EXPECT_EQ(unzigzag(zigzag(v)), v);
    }
    EXPECT_EQ(zigzag(-1), 1u);
    EXPECT_EQ(zigzag(1), 2u);
}

TEST(TraceFormat, StringNeverReadsPastEnd) {
    uint8_t buf[16];
    uint8_t* p = put_varint(buf, 100);  // claims 100 bytes, has none
    Cursor c{buf, p};
    std::string_view s;
    EXPECT_FALSE(c.string(s));
}

TEST(TraceFormat, HeaderRoundTrip) {
    FileHeader h;
    h.pid = 4242;
    h.parent_pid = 7;
    h.tick_kind = TickKind::Tsc;
    h.start_ns = 123456789;
    h.start_realtime_ns = 987654321;
    h.start_ticks = 55;
    h.ticks_per_second = 2500000000ull;
    h.python_version = "3.12.1 (main)";
    std::vector<uint8_t> buf(kFixedHeaderSize + h.python_version.size());
    size_t n = encode_header(h, buf.data());
    ASSERT_EQ(n, buf.size());
    FileHeader out;
    ASSERT_EQ(decode_header(buf.data(), n, out), HeaderStatus::Ok);
    EXPECT_EQ(out.pid, 4242u);
    EXPECT_EQ(out.parent_pid, 7u);
    EXPECT_EQ(out.tick_kind, TickKind::Tsc);
    EXPECT_EQ(out.start_ns, 123456789u);
    EXPECT_EQ(out.start_ticks, 55u);
    EXPECT_EQ(out.ticks_per_second, 2500000000ull);
    EXPECT_EQ(out.header_size, n);
    EXPECT_EQ(out.python_version, "3.12.1 (main)");
    EXPECT_EQ(out.clock_id, kClockMonotonic);
    for (size_t cut = 0; cut < n; ++cut) {
        EXPECT_NE(decode_header(buf.data(), cut, out), HeaderStatus::Ok) << cut;
    }
    buf[0] = 'X';
    EXPECT_EQ(decode_header(buf.data(), n, out), HeaderStatus::BadMagic);
    buf[0] = 'E';
    buf[8] = 99;  // major version
    EXPECT_EQ(decode_header(buf.data(), n, out), HeaderStatus::UnsupportedVersion);
}
