// thunk_x86_64.h - the per-function thunk for x86-64 and the DWARF CFI that describes it.
//
// A thunk is called as thunk(tstate, frame, throwflag, evaluator) and does nothing but call
// evaluator(tstate, frame, throwflag) inside a standard frame:
//
//   +0  55          push %rbp            CFA = rsp+8,  ra at CFA-8
//   +1  48 89 e5    mov  %rsp,%rbp       CFA = rsp+16, rbp at CFA-16
//   +4  ff d1       call *%rcx           CFA = rbp+16  (the evaluator: 4th argument, SysV ABI)
//   +6  5d          pop  %rbp            CFA = rbp+16
//   +7  c3          ret                  CFA = rsp+8,  rbp restored
//   +8  salt        8 bytes, never executed: makes every thunk's bytes unique, because
//                   `perf inject --jit` derives build-ids from code bytes and merges equal ones.
//
// The return address a stack walk finds in a frame below the evaluator is thunk+6, inside the
// thunk of the Python function that frame runs: that is what makes Python functions visible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace etwtrace::thunks {

inline constexpr size_t kThunkCodeSize = 8;    // push .. ret
inline constexpr size_t kThunkSize = 16;       // code + salt: what perf is told the thunk is
inline constexpr size_t kReturnOffset = 6;     // return address of the evaluator's frame

// Writes one thunk (kThunkSize bytes) at dst.
void write_thunk(uint8_t* dst, uint64_t salt);

// Unwind information for one thunk of kThunkSize bytes, laid out the way `perf inject --jit`
// (tools/perf/util/genelf.c) places it in the ELF object it synthesizes from a jitdump
// code-load record: `.eh_frame` at ALIGN_8(text + code size), `.eh_frame_hdr` right after it.
// Every address inside is pc-relative or data-relative, so the same bytes serve every thunk.
struct UnwindInfo {
    std::vector<uint8_t> data;     // .eh_frame, then .eh_frame_hdr
    uint64_t eh_frame_hdr_size = 0;
    uint64_t mapped_size = 0;      // what perf adds to the code's mapping: data rounded up to 16
};
const UnwindInfo& thunk_unwind_info();

// Distance between two thunks in the arena. perf maps each synthesized object over
// [thunk, thunk + ALIGN_8(kThunkSize) + mapped_size) and reads the unwind tables through that
// mapping, so these ranges must not overlap: the slack after a thunk's 16 bytes is its unwind
// tables' address range in perf's view of the process.
size_t thunk_stride();

}  // namespace etwtrace::thunks

// ---- running on another stack (thunks/stack_segments.*) -------------------------------------

// The current stack pointer.
inline uintptr_t stack_pointer() {
    uintptr_t sp;
    asm volatile("mov %%rsp, %0" : "=r"(sp));
    return sp;
}

// Calls fn(arg) with the stack pointer at `stack_top` (16-byte aligned), then returns on the
// caller's stack. Its frame keeps %rbp pointing at the caller's, with CFI saying so, so frame
// pointer and DWARF stack walks go on from the new stack into the old one.
extern "C" void etwtrace_call_on_stack(void* arg, void (*fn)(void*), void* stack_top);
