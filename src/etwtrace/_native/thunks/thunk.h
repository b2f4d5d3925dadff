// thunk.h - the thunk template of the CPU this core is built for. Everything outside thunks/
// includes this header, never an architecture's own.
//
// Each architecture provides, in thunks/thunk_<arch>.{h,cpp}: kThunkCodeSize, kThunkSize,
// kReturnOffset, write_thunk(), thunk_unwind_info(), thunk_stride(), stack_pointer() and
// etwtrace_call_on_stack() (see thunk_x86_64.h; the last in thunks/stack_switch_<arch>.cpp),
// and this header adds the ELF machine number jitdump records carry for its code.
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include "thunks/thunk_x86_64.h"
namespace etwtrace::thunks {
inline constexpr uint32_t kElfMachine = 62;  // EM_X86_64
}  // namespace etwtrace::thunks
#else
#error "etwtrace: no thunk template for this CPU; write thunks/thunk_<arch>.{h,cpp} (see thunk_x86_64.h) and select it here"
#endif
