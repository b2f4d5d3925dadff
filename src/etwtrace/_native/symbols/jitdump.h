// jitdump.h - perf's jitdump file format, version 1 (linux tools/perf/Documentation/
// jitdump-specification.txt; reader in tools/perf/util/jitdump.c).
//
// File = header, then records. Every record starts with RecordPrefix; all fields are in the
// writer's byte order (perf detects swapped files by the magic). Timestamps are CLOCK_MONOTONIC
// nanoseconds, matching `perf record -k 1`.
//
// How perf consumes the records we write (one group per thunk, in this order):
//   DEBUG_INFO       held until the next CODE_LOAD: becomes the object's .debug_line
//   UNWINDING_INFO   held until the next CODE_LOAD: data = .eh_frame then .eh_frame_hdr
//                    (genelf.c reads it in that order, whatever the spec's prose suggests)
//   CODE_LOAD        `perf inject --jit` writes jitted-<pid>-<code_index>.so with the code
//                    bytes at vaddr GEN_ELF_TEXT_OFFSET, .eh_frame at ALIGN_8(text+code_size),
//                    and injects an MMAP2 of [code_addr, code_addr + ALIGN_8(code_size) +
//                    mapped_size), replacing the anonymous mapping for that range.
// perf finds the dump only through an executable mmap of the file by the process: the writer
// maps its first page PROT_READ|PROT_EXEC and keeps it mapped.
#pragma once

#include <cstdint>

namespace etwtrace::symbols::jitdump {

inline constexpr uint32_t kMagic = 0x4A695444;  // "JiTD" read as a little-endian u32
inline constexpr uint32_t kVersion = 1;

enum RecordType : uint32_t {
    JIT_CODE_LOAD = 0,
    JIT_CODE_MOVE = 1,
    JIT_CODE_DEBUG_INFO = 2,
    JIT_CODE_CLOSE = 3,
    JIT_CODE_UNWINDING_INFO = 4,
};

struct FileHeader {
    uint32_t magic;
    uint32_t version;
    uint32_t total_size;   // sizeof(FileHeader)
    uint32_t elf_mach;     // ELF e_machine of the code (thunks::kElfMachine)
    uint32_t pad1;
    uint32_t pid;
    uint64_t timestamp;
    uint64_t flags;        // 0: timestamps are CLOCK_MONOTONIC, not TSC
};
static_assert(sizeof(FileHeader) == 40, "jitdump header is 40 bytes (spec: struct jitheader)");

struct RecordPrefix {
    uint32_t id;           // RecordType
    uint32_t total_size;   // prefix + body + trailing data
    uint64_t timestamp;
};
static_assert(sizeof(RecordPrefix) == 16, "jitdump record prefix is 16 bytes (struct jr_prefix)");

struct CodeLoad {          // followed by the NUL-terminated name, then code_size code bytes
    RecordPrefix p;
    uint32_t pid;
    uint32_t tid;
    uint64_t vma;
    uint64_t code_addr;
    uint64_t code_size;
    uint64_t code_index;   // unique per load: names the synthesized jitted-<pid>-<index>.so
};
static_assert(sizeof(CodeLoad) == 56, "struct jr_code_load is 56 bytes before the name");

struct DebugInfo {         // followed by nr_entry DebugEntry, each with a NUL-terminated file name
    RecordPrefix p;
    uint64_t code_addr;
    uint64_t nr_entry;
};
static_assert(sizeof(DebugInfo) == 32, "struct jr_code_debug_info is 32 bytes before entries");

struct DebugEntry {
    uint64_t addr;
    uint32_t lineno;
    uint32_t discrim;
};
static_assert(sizeof(DebugEntry) == 16, "struct debug_entry is 16 bytes before its name");

struct UnwindingInfo {     // followed by unwinding_size bytes, padded to 8
    RecordPrefix p;
    uint64_t unwinding_size;      // .eh_frame + .eh_frame_hdr
    uint64_t eh_frame_hdr_size;
    uint64_t mapped_size;
};
static_assert(sizeof(UnwindingInfo) == 40, "struct jr_code_unwinding_info is 40 bytes before data");

}  // namespace etwtrace::symbols::jitdump
