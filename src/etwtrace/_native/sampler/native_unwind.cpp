#include "sampler/native_unwind.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#ifdef ETWTRACE_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

namespace etwtrace::sampler {

#ifdef ETWTRACE_HAVE_LIBUNWIND

bool native_unwind_available() { return true; }

namespace {

// The futex word of the loader's dl_load_write_lock, which dl_iterate_phdr takes. It lives in
// ld.so's private _rtld_global at an offset that depends on the glibc version, so it is found
// at run time: inside a dl_iterate_phdr callback it is the one recursive mutex in _rtld_global
// that this thread holds. 0 in the handler means nobody holds it, nor is this thread halfway
// through taking it (a signal there, then dl_iterate_phdr again, hung the program for good).
const int* g_loader_lock_word = nullptr;

static_assert(offsetof(pthread_mutex_t, __data.__lock) == 0, "the futex word begins the mutex");

int find_loader_lock(dl_phdr_info*, size_t, void*) {
    auto* rtld_global = static_cast<const char*>(dlsym(RTLD_DEFAULT, "_rtld_global"));
    Dl_info info{};
    void* entry = nullptr;
    if (!rtld_global || dladdr1(rtld_global, &info, &entry, RTLD_DL_SYMENT) == 0 || !entry) {
        return 1;
    }
    const size_t size = static_cast<const ElfW(Sym)*>(entry)->st_size;
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    const int* found = nullptr;
    int matches = 0;
    const auto start = reinterpret_cast<uintptr_t>(rtld_global);
    const size_t first = (alignof(pthread_mutex_t) - start % alignof(pthread_mutex_t)) % alignof(pthread_mutex_t);
    for (size_t offset = first; offset + sizeof(pthread_mutex_t) <= size; offset += alignof(pthread_mutex_t)) {
        pthread_mutex_t mutex;
        std::memcpy(&mutex, rtld_global + offset, sizeof mutex);
        if (mutex.__data.__owner == self && mutex.__data.__count >= 1 && mutex.__data.__lock != 0 &&
            (mutex.__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP) {
            // __lock, the futex word, is the mutex's first member.
            found = reinterpret_cast<const int*>(rtld_global + offset);
            ++matches;
        }
    }
    if (matches == 1) {
        g_loader_lock_word = found;
    }
    return 1;
}

}  // namespace

bool native_unwind_prepare() {
    static bool prepared = false;
    if (!prepared) {
        unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
        dl_iterate_phdr(find_loader_lock, nullptr);
        prepared = true;
    }
    return g_loader_lock_word != nullptr;
}

size_t unwind_native(void* ucontext, uint64_t* out, size_t max, bool& truncated, bool& skipped) {
    truncated = false;
    skipped = !g_loader_lock_word || __atomic_load_n(g_loader_lock_word, __ATOMIC_ACQUIRE) != 0;
    if (skipped) {
        return 0;
    }
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
bool native_unwind_prepare() { return false; }
size_t unwind_native(void*, uint64_t*, size_t, bool& truncated, bool& skipped) {
    truncated = false;
    skipped = false;
    return 0;
}

#endif

}  // namespace etwtrace::sampler
