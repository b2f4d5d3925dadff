// Units for the thunk arena and the thunk's unwind tables (src/etwtrace/_native/thunks/).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>
#include <sstream>
#include <string>

#include "thunks/arena.h"
#include "thunks/thunk.h"

using namespace etwtrace::thunks;

namespace {

struct Mapping {
    uintptr_t start = 0, end = 0;
    std::string perms;
    std::string name;  // the path column, e.g. "/memfd:etwtrace-thunks (deleted)"
};

Mapping mapping_of(const void* address) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    auto a = reinterpret_cast<uintptr_t>(address);
    while (std::getline(maps, line)) {
        Mapping m;
        char dash;
        std::istringstream in(line);
        in >> std::hex >> m.start >> dash >> m.end >> m.perms;
        if (a >= m.start && a < m.end) {
            std::string offset, device, inode;
            in >> offset >> device >> inode;
            std::getline(in >> std::ws, m.name);
            return m;
        }
    }
    return {};
}

using Evaluator = void* (*)(void*, void*, int);
using Thunk = void* (*)(void*, void*, int, Evaluator);

void* seen_return_address = nullptr;

__attribute__((noinline)) void* fake_evaluator(void* tstate, void* frame, int throwflag) {
    seen_return_address = __builtin_return_address(0);
    return static_cast<char*>(tstate) + reinterpret_cast<uintptr_t>(frame) + throwflag;
}

uint32_t read_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
int32_t read_i32(const uint8_t* p) { return static_cast<int32_t>(read_u32(p)); }

}  // namespace

TEST(ThunkArena, ThunksCallTheEvaluatorAndReturnItsResult) {
    ThunkArena arena;
    auto thunk = reinterpret_cast<Thunk>(arena.allocate());
    ASSERT_NE(thunk, nullptr);
    void* result = thunk(reinterpret_cast<void*>(1000), reinterpret_cast<void*>(20), 3, &fake_evaluator);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(result), 1023u);
    // The evaluator returns into the thunk, right after its call instruction...
    EXPECT_EQ(seen_return_address, reinterpret_cast<uint8_t*>(thunk) + kReturnOffset);
}

TEST(ThunkArena, MemoryIsExecutableButNeverWritable) {
    ThunkArena arena;
    void* thunk = arena.allocate();
    ASSERT_NE(thunk, nullptr);
    Mapping m = mapping_of(thunk);
    ASSERT_NE(m.start, 0u);
    EXPECT_EQ(m.perms.substr(0, 3), "r-x");
    EXPECT_TRUE(arena.contains(thunk));
    int local = 0;
    EXPECT_FALSE(arena.contains(&local));
}

TEST(ThunkArena, EveryThunkPublishesUniqueBytes) {
    ThunkArena arena(4096, 0x1234);
    std::set<std::vector<uint8_t>> seen;
    const uint8_t* previous = nullptr;
    for (int i = 0; i < 100; ++i) {
        auto* thunk = static_cast<const uint8_t*>(arena.allocate());
        ASSERT_NE(thunk, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(thunk) % 16, 0u) << "thunks start 16-byte aligned";
        EXPECT_EQ(thunk[0], 0x55);  // push %rbp
        EXPECT_EQ(thunk[kThunkCodeSize - 1], 0xc3);  // ret
        // In memory every thunk is the same bytes (so chunks can share them); what is published
        // is the same code with a salt of its own, because perf merges objects with equal bytes.
        std::vector<uint8_t> published = arena.published_code(thunk);
        ASSERT_EQ(published.size(), kThunkSize);
        EXPECT_EQ(std::memcmp(published.data(), thunk, kThunkCodeSize), 0);
        EXPECT_TRUE(seen.insert(published).second) << i;
        for (size_t k = kThunkCodeSize; k < kThunkSize; ++k) {
            EXPECT_EQ(thunk[k], 0xcc) << "padding after ret is int3";
        }
        if (previous && i % static_cast<int>(4096 / arena.stride()) != 0) {  // same chunk
            EXPECT_EQ(static_cast<size_t>(thunk - previous), arena.stride());
            EXPECT_EQ(std::memcmp(previous, thunk, kThunkSize), 0);
        }
        previous = thunk;
    }
    ThunkArena other_run(4096, 0x5678);
    auto* first_other = other_run.allocate();
    EXPECT_NE(other_run.published_code(first_other), arena.published_code(first_other))
        << "another run's thunk at the same address publishes other bytes";
}

TEST(ThunkArena, ChunksShareOnePhysicalCopy) {
    ThunkArena arena(4096);
    size_t per_chunk = 4096 / arena.stride();
    std::vector<void*> firsts;
    for (size_t i = 0; i < per_chunk * 3; ++i) {
        void* thunk = arena.allocate();
        ASSERT_NE(thunk, nullptr);
        if (i % per_chunk == 0) {
            firsts.push_back(thunk);
        }
    }
    ASSERT_EQ(arena.chunk_count(), 3u);
    EXPECT_EQ(arena.mapped_bytes(), 3u * 4096);
    EXPECT_EQ(arena.physical_bytes(), 4096u) << "three chunks, one shared memfd page";
    for (void* thunk : firsts) {
        Mapping m = mapping_of(thunk);
        EXPECT_EQ(m.perms, "r-xs") << "shared, executable, never writable";
        EXPECT_NE(m.name.find("memfd:etwtrace-thunks"), std::string::npos) << m.name;
        // Each chunk's thunks run.
        auto fn = reinterpret_cast<Thunk>(thunk);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(fn(nullptr, reinterpret_cast<void*>(7), 1, &fake_evaluator)), 8u);
    }
}

TEST(ThunkArena, GrowsOnDemandAndKeepsOldChunks) {
    ThunkArena arena(4096);
    size_t per_chunk = 4096 / arena.stride();
    void* first = arena.allocate();
    for (size_t i = 1; i < per_chunk * 3 + 1; ++i) {
        ASSERT_NE(arena.allocate(), nullptr);
    }
    EXPECT_EQ(arena.chunk_count(), 4u);
    EXPECT_EQ(arena.thunk_count(), per_chunk * 3 + 1);
    // Old chunks stay mapped and callable.
    auto thunk = reinterpret_cast<Thunk>(first);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(thunk(nullptr, reinterpret_cast<void*>(5), 1, &fake_evaluator)), 6u);
}

TEST(ThunkArena, StrideLeavesRoomForPerfsView) {
    // perf maps each jitted object over ALIGN_8(code) + mapped_size bytes; neighbours must not
    // overlap, or perf reads one thunk's unwind tables out of the next thunk's object.
    const UnwindInfo& info = thunk_unwind_info();
    EXPECT_LE(((kThunkSize + 7) / 8 * 8) + info.mapped_size, thunk_stride());
    EXPECT_EQ(thunk_stride() % 16, 0u);
    EXPECT_LE(thunk_stride(), 96u) << "address space per traced function grew";
}

TEST(ThunkUnwindInfo, EhFrameAndHeaderAreConsistent) {
    const UnwindInfo& info = thunk_unwind_info();
    const uint8_t* d = info.data.data();
    const size_t eh_frame_size = info.data.size() - info.eh_frame_hdr_size;
    ASSERT_EQ(info.eh_frame_hdr_size, 20u);
    ASSERT_EQ(eh_frame_size % 8, 0u);
    EXPECT_GE(info.mapped_size, info.data.size());

    // CIE
    uint32_t cie_length = read_u32(d);
    EXPECT_EQ(read_u32(d + 4), 0u) << "CIE id";
    EXPECT_EQ(d[8], 1) << "CIE version";
    EXPECT_STREQ(reinterpret_cast<const char*>(d + 9), "zR");
    // FDE
    const size_t fde = 4 + cie_length;
    uint32_t fde_length = read_u32(d + fde);
    EXPECT_EQ(fde + 4 + fde_length, eh_frame_size);
    EXPECT_EQ(read_u32(d + fde + 4), fde + 4) << "CIE pointer leads back to offset 0";
    // pc_begin is pc-relative: text starts ALIGN_8(kThunkSize) bytes before .eh_frame.
    int64_t pc_begin = static_cast<int64_t>(fde + 8) + read_i32(d + fde + 8);
    EXPECT_EQ(pc_begin, -static_cast<int64_t>((kThunkSize + 7) / 8 * 8));
    EXPECT_EQ(read_u32(d + fde + 12), kThunkSize);

    // .eh_frame_hdr
    const uint8_t* hdr = d + eh_frame_size;
    EXPECT_EQ(hdr[0], 1);
    EXPECT_EQ(static_cast<int64_t>(eh_frame_size + 4) + read_i32(hdr + 4), 0) << "eh_frame_ptr";
    EXPECT_EQ(read_u32(hdr + 8), 1u) << "one FDE";
    EXPECT_EQ(static_cast<int64_t>(eh_frame_size) + read_i32(hdr + 12), pc_begin) << "table: location";
    EXPECT_EQ(static_cast<int64_t>(eh_frame_size) + read_i32(hdr + 16), static_cast<int64_t>(fde)) << "table: FDE";
}
