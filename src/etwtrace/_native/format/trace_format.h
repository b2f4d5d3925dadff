// trace_format.h - the one definition of the etwtrace trace file format (no Python.h).
//
// Prose specification: docs/trace-format.md. The writer (trace/) and the reader (reader/) both
// use only what is defined here; change the two together and bump kVersionMinor (compatible
// additions: new record types or event tags that old readers may skip) or kVersionMajor.
//
//   file    := FileHeader Record*
//   Record  := u8 type | varint payload_size | payload[payload_size]
//   CHUNK payload := varint thread_id | varint seq | varint base_ticks | Event*
//   Event   := u8 tag | varint tick_delta | fields (see EventTag)
//
// Integers in the fixed header are little-endian; everything else is LEB128 varints (unsigned)
// or zigzag varints (signed). Strings are varint length + UTF-8 bytes (no terminator).
// Timestamps are ticks (see TickKind) converted to CLOCK_MONOTONIC nanoseconds through the
// header's calibration and the CLOCK_SYNC records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace etwtrace::format {

inline constexpr char kMagic[8] = {'E', 'T', 'W', 'T', 'R', 'A', 'C', 'E'};
inline constexpr uint16_t kVersionMajor = 1;
inline constexpr uint16_t kVersionMinor = 1;  // 1.1: the sampler's records
inline constexpr uint32_t kClockMonotonic = 1;  // Linux CLOCK_MONOTONIC

// How the per-event tick counter relates to nanoseconds.
enum class TickKind : uint32_t {
    Nanoseconds = 0,  // ticks are CLOCK_MONOTONIC nanoseconds already
    Tsc = 1,          // x86 invariant TSC: ns = sync.ns + (ticks - sync.ticks) * ns_per_tick
};

// Fixed part of the file header, as laid out on disk (little-endian, no padding).
//   off size field
//     0    8 magic "ETWTRACE"
//     8    2 version_major
//    10    2 version_minor
//    12    4 header_size        bytes of the whole header, python_version included
//    16    4 pid
//    20    4 parent_pid         0 unless this file was started in a fork() child
//    24    4 clock_id           1 = CLOCK_MONOTONIC
//    28    4 tick_kind          TickKind
//    32    8 start_ns           CLOCK_MONOTONIC when the file was opened
//    40    8 start_realtime_ns  CLOCK_REALTIME at the same moment
//    48    8 start_ticks        tick counter at start_ns (the first clock sync point)
//    56    8 ticks_per_second   calibrated tick rate (1e9 for TickKind::Nanoseconds)
//    64    2 python_version_size
//    66    n python_version     sys.version (UTF-8)
inline constexpr size_t kFixedHeaderSize = 66;

struct FileHeader {
    uint16_t version_major = kVersionMajor;
    uint16_t version_minor = kVersionMinor;
    uint32_t header_size = 0;
    uint32_t pid = 0;
    uint32_t parent_pid = 0;
    uint32_t clock_id = kClockMonotonic;
    TickKind tick_kind = TickKind::Nanoseconds;
    uint64_t start_ns = 0;
    uint64_t start_realtime_ns = 0;
    uint64_t start_ticks = 0;
    uint64_t ticks_per_second = 1000000000;
    std::string_view python_version;
};

enum class RecordType : uint8_t {
    Chunk = 1,      // one thread's events, in order; a thread's chunks appear in seq order
    ClockSync = 2,  // varint ticks | varint monotonic_ns
    Loss = 3,       // varint thread_id | varint lost_events: events that could not be written
    End = 4,        // varint chunks | varint lost_events | varint end_ns: clean close
    // The sampler's counters, written once before END (a reader that does not know it skips it):
    // varint samples | varint dropped (ring full) | varint unresolved_frames (code object
    // gone before resolution) | varint truncated (deeper than kMaxSampledFrames) |
    // varint period_ns | u8 SampleSource | varint threads | varint unmerged (samples whose
    // native and Python stacks could not be paired: written with their Python frames only)
    SamplerStats = 5,
};

// How the sampler's signals were produced (SamplerStats).
enum class SampleSource : uint8_t {
    PerfTaskClock = 0,  // perf_event_open(PERF_COUNT_SW_TASK_CLOCK), overflow signal to the thread
    TimerThreadCpu = 1, // timer_create(thread CPU clock, SIGEV_THREAD_ID): perf events not permitted
    TimerWall = 2,      // timer_create(CLOCK_MONOTONIC, SIGEV_THREAD_ID): wall-clock (off-CPU too)
};

enum class EventTag : uint8_t {
    Push = 1,      // varint function_id | varint caller_id | varint caller_offset
    Pop = 2,       // varint function_id
    Function = 3,  // varint id | u8 flags | varint line | varint begin | varint end |
                   // string source_file | string name | varint runs | runs*(varint
                   // offset_delta, zigzag line_delta)   (the line table: see LineTable)
    Mark = 4,      // u8 kind (MarkKind) | string text
    Thread = 5,    // u8 1 = start, 0 = stop (thread id is the chunk's)
    // The sampler (1.1). Stacks are a prefix tree shared by all threads of the file: a node is
    // defined once, before (in file order, not necessarily in the same chunk) any use.
    StackNode = 6,     // varint node (>= 1) | varint parent (0: root) | varint frame | zigzag line
                       // frame = id << 1 | is_native: a Function id (Python, line = the line
                       // running) or a NativeSymbol id (line 0)
    NativeSymbol = 7,  // varint id | u8 flags (kSymbolIsKernel) | varint address | string module |
                       // string symbol (empty when unknown; address is then the frame's own)
    Sample = 8,        // varint leaf node | u8 flags (kSample*): one sample of this thread
};

inline constexpr uint8_t kSymbolIsKernel = 0x01;
inline constexpr uint8_t kSampleWallClock = 0x01;  // taken by the wall-clock timer
inline constexpr uint8_t kSampleTruncated = 0x02;  // deeper than the sampler keeps: root frames cut
inline constexpr uint8_t kSampleUnresolved = 0x04; // some frames' code objects died before resolution
inline constexpr uint8_t kSampleUnmerged = 0x08;   // native and Python frames could not be merged
inline constexpr uint8_t kSampleRequested = 0x10;  // taken on request (_mark_stack), not by the clock

enum class MarkKind : uint8_t { Mark = 0, RangeStart = 1, RangeStop = 2, StackSample = 3 };

inline constexpr uint8_t kFunctionIsPython = 0x01;

// Largest encoded size of the fixed part of a push or pop (tag + 4 varints): writers reserve
// this much before encoding one without further bounds checks.
inline constexpr size_t kMaxVarint64 = 10;
inline constexpr size_t kMaxPushSize = 1 + kMaxVarint64 + 5 + 5 + 5;

// ---- varints -------------------------------------------------------------------------------

inline uint8_t* put_varint(uint8_t* out, uint64_t value) {
    while (value >= 0x80) {
        *out++ = static_cast<uint8_t>(value) | 0x80;
        value >>= 7;
    }
    *out++ = static_cast<uint8_t>(value);
    return out;
}

inline uint64_t zigzag(int64_t value) {
    return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
}

inline int64_t unzigzag(uint64_t value) {
    return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
}

inline void put_u16(uint8_t* out, uint16_t v) { std::memcpy(out, &v, 2); }
inline void put_u32(uint8_t* out, uint32_t v) { std::memcpy(out, &v, 4); }
inline void put_u64(uint8_t* out, uint64_t v) { std::memcpy(out, &v, 8); }
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the trace format is little-endian; add byte swaps in put_*/Cursor for this target");

// Bounds-checked decoding cursor shared by the reader (and tests). Every getter returns false
// on truncated or malformed input instead of reading past `end`.
struct Cursor {
    const uint8_t* pos;
    const uint8_t* end;

    size_t remaining() const { return static_cast<size_t>(end - pos); }

    bool varint(uint64_t& value) {
        if (__builtin_expect(pos < end && *pos < 0x80, 1)) {  // one byte: most deltas and ids
            value = *pos++;
            return true;
        }
        uint64_t result = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            if (pos >= end) {
                return false;
            }
            uint8_t byte = *pos++;
            result |= static_cast<uint64_t>(byte & 0x7f) << shift;
            if (!(byte & 0x80)) {
                value = result;
                return true;
            }
        }
        return false;  // more than 10 bytes: malformed
    }
    bool varint32(uint32_t& value) {
        uint64_t v = 0;
        if (!varint(v) || v > 0xffffffffu) {
            return false;
        }
        value = static_cast<uint32_t>(v);
        return true;
    }
    bool u8(uint8_t& value) {
        if (pos >= end) {
            return false;
        }
        value = *pos++;
        return true;
    }
    bool bytes(size_t size, const uint8_t*& data) {
        if (remaining() < size) {
            return false;
        }
        data = pos;
        pos += size;
        return true;
    }
    bool string(std::string_view& value) {
        uint64_t size = 0;
        const uint8_t* data = nullptr;
        if (!varint(size) || size > remaining() || !bytes(static_cast<size_t>(size), data)) {
            return false;
        }
        value = std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(size));
        return true;
    }
};

template <typename T>
inline T get_le(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

// Serialises `header` (header_size is computed) into `out`, which must hold
// kFixedHeaderSize + python_version.size() bytes; returns the number of bytes written.
inline size_t encode_header(const FileHeader& header, uint8_t* out) {
    size_t version_size = header.python_version.size() > 0xffff ? 0xffff : header.python_version.size();
    std::memcpy(out, kMagic, 8);
    put_u16(out + 8, header.version_major);
    put_u16(out + 10, header.version_minor);
    put_u32(out + 12, static_cast<uint32_t>(kFixedHeaderSize + version_size));
    put_u32(out + 16, header.pid);
    put_u32(out + 20, header.parent_pid);
    put_u32(out + 24, header.clock_id);
    put_u32(out + 28, static_cast<uint32_t>(header.tick_kind));
    put_u64(out + 32, header.start_ns);
    put_u64(out + 40, header.start_realtime_ns);
    put_u64(out + 48, header.start_ticks);
    put_u64(out + 56, header.ticks_per_second);
    put_u16(out + 64, static_cast<uint16_t>(version_size));
    std::memcpy(out + kFixedHeaderSize, header.python_version.data(), version_size);
    return kFixedHeaderSize + version_size;
}

enum class HeaderStatus { Ok, Truncated, BadMagic, UnsupportedVersion, Malformed };

// Parses the header at the start of `data`; `header.python_version` points into `data`.
inline HeaderStatus decode_header(const uint8_t* data, size_t size, FileHeader& header) {
    // A file shorter than the magic is ours cut short only if what there is matches it.
    if (std::memcmp(data, kMagic, size < 8 ? size : 8) != 0) {
        return HeaderStatus::BadMagic;
    }
    if (size < 8) {
        return HeaderStatus::Truncated;
    }
    if (size < kFixedHeaderSize) {
        return HeaderStatus::Truncated;
    }
    header.version_major = get_le<uint16_t>(data + 8);
    header.version_minor = get_le<uint16_t>(data + 10);
    if (header.version_major != kVersionMajor) {
        return HeaderStatus::UnsupportedVersion;
    }
    header.header_size = get_le<uint32_t>(data + 12);
    header.pid = get_le<uint32_t>(data + 16);
    header.parent_pid = get_le<uint32_t>(data + 20);
    header.clock_id = get_le<uint32_t>(data + 24);
    header.tick_kind = static_cast<TickKind>(get_le<uint32_t>(data + 28));
    header.start_ns = get_le<uint64_t>(data + 32);
    header.start_realtime_ns = get_le<uint64_t>(data + 40);
    header.start_ticks = get_le<uint64_t>(data + 48);
    header.ticks_per_second = get_le<uint64_t>(data + 56);
    uint16_t version_size = get_le<uint16_t>(data + 64);
    if (header.header_size < kFixedHeaderSize + version_size) {
        return HeaderStatus::Malformed;
    }
    if (size < header.header_size) {
        return HeaderStatus::Truncated;
    }
    if (header.ticks_per_second == 0 ||
        (header.tick_kind != TickKind::Nanoseconds && header.tick_kind != TickKind::Tsc)) {
        return HeaderStatus::Malformed;
    }
    header.python_version = std::string_view(reinterpret_cast<const char*>(data + kFixedHeaderSize), version_size);
    return HeaderStatus::Ok;
}

// Line table of a Python function: maps a bytecode byte offset (the caller_offset of a push
// whose caller is this function) to a source line. Encoded as runs sorted by offset: each run
// starts at offset (previous start + offset_delta) and has line (previous line + line_delta),
// starting from offset 0 and the function's first line; an offset maps to the last run whose
// start is <= offset.

}  // namespace etwtrace::format
