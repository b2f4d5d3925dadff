#include "thunks/stack_segments.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace etwtrace::thunks {

thread_local uintptr_t t_stack_floor __attribute__((tls_model("initial-exec"))) = UINTPTR_MAX;

namespace {

constexpr size_t kMaxReserve = 4u << 20;
constexpr size_t kMinSegment = 1u << 20;

std::atomic<size_t> g_mapped{0};
std::atomic<size_t> g_peak{0};

struct Segment {
    uint8_t* base = nullptr;  // the guard page
    size_t size = 0;          // guard page included
};

// This thread's segments, innermost last; `in_use` of them are running calls.
struct ThreadSegments {
    std::vector<Segment> segments;
    size_t in_use = 0;
    size_t reserve = 0;       // bytes left below the floor, on every stack of this thread
    ~ThreadSegments() {
        for (const Segment& segment : segments) {
            munmap(segment.base, segment.size);
            g_mapped.fetch_sub(1, std::memory_order_relaxed);
        }
    }
};
thread_local ThreadSegments t_segments;

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

void learn_floor() {
    pthread_attr_t attr;
    void* low = nullptr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &low, &size);
        pthread_attr_destroy(&attr);
    }
    if (low == nullptr || size == 0) {
        // Unknown bounds: assume the 8 MB a default stack has, below the current frame.
        size = 8u << 20;
        low = reinterpret_cast<void*>(stack_pointer() - size + (64u << 10));
    }
    t_segments.reserve = std::min(size / 2, kMaxReserve);
    t_stack_floor = reinterpret_cast<uintptr_t>(low) + t_segments.reserve;
}

bool map_segment(Segment& segment, size_t reserve) {
    size_t page = page_size();
    size_t usable = std::max(2 * reserve, kMinSegment);
    usable = (usable + page - 1) / page * page;
    void* memory = mmap(nullptr, usable + page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (memory == MAP_FAILED) {
        return false;
    }
    if (mprotect(memory, page, PROT_NONE) != 0) {  // the guard page: an overflow faults
        munmap(memory, usable + page);
        return false;
    }
    segment.base = static_cast<uint8_t*>(memory);
    segment.size = usable + page;
    size_t now = g_mapped.fetch_add(1, std::memory_order_relaxed) + 1;
    size_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return true;
}

struct SwitchedCall {
    void (*fn)(void*);
    void* arg;
#if defined(__SANITIZE_ADDRESS__)
    void* fake_stack = nullptr;
    const void* old_bottom = nullptr;
    size_t old_size = 0;
#endif
};

void run_switched(void* p) {
    auto* call = static_cast<SwitchedCall*>(p);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &call->old_bottom, &call->old_size);
#endif
    call->fn(call->arg);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(nullptr, call->old_bottom, call->old_size);
#endif
}

}  // namespace

bool stack_has_room_slow() {
    if (t_stack_floor == UINTPTR_MAX) {
        learn_floor();
    }
    return stack_has_room();
}

bool call_on_fresh_segment(void (*fn)(void*), void* arg) {
    ThreadSegments& mine = t_segments;
    if (mine.reserve == 0) {
        learn_floor();
    }
    if (mine.in_use == mine.segments.size()) {
        Segment segment;
        if (!map_segment(segment, mine.reserve)) {
            return false;
        }
        mine.segments.push_back(segment);
    }
    const Segment& segment = mine.segments[mine.in_use++];
    size_t page = page_size();
    uintptr_t saved_floor = t_stack_floor;
    t_stack_floor = reinterpret_cast<uintptr_t>(segment.base) + page + mine.reserve;
    auto* top = segment.base + segment.size;  // page-aligned, so 16-byte aligned
    SwitchedCall call{fn, arg};
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(&call.fake_stack, segment.base + page, segment.size - page);
#endif
    etwtrace_call_on_stack(&call, &run_switched, top);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(call.fake_stack, nullptr, nullptr);
#endif
    t_stack_floor = saved_floor;
    --mine.in_use;
    // Keep one spare beyond those in use; give the rest back (their pages were touched).
    while (mine.segments.size() > mine.in_use + 1) {
        munmap(mine.segments.back().base, mine.segments.back().size);
        mine.segments.pop_back();
        g_mapped.fetch_sub(1, std::memory_order_relaxed);
    }
    return true;
}

size_t segments_mapped() { return g_mapped.load(std::memory_order_relaxed); }
size_t segments_peak() { return g_peak.load(std::memory_order_relaxed); }

}  // namespace etwtrace::thunks
