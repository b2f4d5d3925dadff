// Compiled on x86-64 only: etwtrace_call_on_stack (see thunk_x86_64.h).
#if defined(__x86_64__)
#include "thunks/thunk_x86_64.h"

// rdi = arg, rsi = fn, rdx = stack_top. The frame is a standard %rbp frame whose CFA stays
// rbp + 16 while %rsp is on the other stack, so unwinders find the caller through it.
asm(R"(
    .pushsection .text
    .globl etwtrace_call_on_stack
    .hidden etwtrace_call_on_stack
    .type etwtrace_call_on_stack, @function
    .p2align 4
etwtrace_call_on_stack:
    .cfi_startproc
    endbr64
    push %rbp
    .cfi_def_cfa_offset 16
    .cfi_offset %rbp, -16
    mov %rsp, %rbp
    .cfi_def_cfa_register %rbp
    mov %rdx, %rsp
    call *%rsi
    mov %rbp, %rsp
    pop %rbp
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size etwtrace_call_on_stack, . - etwtrace_call_on_stack
    .popsection
)");

#endif  // __x86_64__
