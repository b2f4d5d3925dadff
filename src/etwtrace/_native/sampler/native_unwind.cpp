#include "sampler/native_unwind.h"

#ifdef ETWTRACE_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

namespace etwtrace::sampler {

#ifdef ETWTRACE_HAVE_LIBUNWIND

bool native_unwind_available() { return true; }

void native_unwind_prepare() {
    static bool prepared = false;
    if (!prepared) {
        unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
        prepared = true;
    }
}

size_t unwind_native(void* ucontext, uint64_t* out, size_t max, bool& truncated) {
    truncated = false;
    unw_cursor_t cursor;
    // x86-64 Linux: unw_context_t is ucontext_t, so the signal frame's context unwinds directly.
    if (unw_init_local2(&cursor, static_cast<unw_context_t*>(ucontext), UNW_INIT_SIGNAL_FRAME) != 0) {
        return 0;
    }
    size_t n = 0;
    for (;;) {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) {
            break;
        }
        if (n == max) {
            truncated = true;
            break;
        }
        out[n++] = static_cast<uint64_t>(ip);
        if (unw_step(&cursor) <= 0) {
            break;
        }
    }
    return n;
}

#else

bool native_unwind_available() { return false; }
void native_unwind_prepare() {}
size_t unwind_native(void*, uint64_t*, size_t, bool& truncated) {
    truncated = false;
    return 0;
}

#endif

}  // namespace etwtrace::sampler
