#include "probes/probes.h"

#include <string>

#ifdef ETWTRACE_HAVE_SDT
extern "C" {
// SDT semaphores: tracers find them through the probe notes and increment them while attached.
#define ETWTRACE_SEMAPHORE(name) \
    __attribute__((section(".probes"), used)) volatile unsigned short etwtrace_##name##_semaphore = 0
ETWTRACE_SEMAPHORE(thread);
ETWTRACE_SEMAPHORE(function);
ETWTRACE_SEMAPHORE(mark);
ETWTRACE_SEMAPHORE(stack_sample);
ETWTRACE_SEMAPHORE(function_push);
ETWTRACE_SEMAPHORE(function_pop);
#undef ETWTRACE_SEMAPHORE
}
#endif

// The one place each probe fires. Never inlined or cloned: a copy of a function is a copy of
// its SDT note, i.e. a second uprobe for every tracer to register. Clang has no noclone; the
// one-site test in tests/unit catches any compiler that copies a site anyway.
#if defined(__clang__)
#define ETWTRACE_PROBE_SITE __attribute__((noinline))
#else
#define ETWTRACE_PROBE_SITE __attribute__((noinline, noclone))
#endif

namespace etwtrace::probes {

namespace site {

ETWTRACE_PROBE_SITE void thread([[maybe_unused]] uint64_t thread_id, [[maybe_unused]] int start) {
    ETWTRACE_PROBE2(thread, thread_id, start);
}

ETWTRACE_PROBE_SITE void function([[maybe_unused]] uint32_t id, [[maybe_unused]] uint64_t begin,
                                  [[maybe_unused]] uint64_t end, [[maybe_unused]] int line,
                                  [[maybe_unused]] const char* file, [[maybe_unused]] const char* name,
                                  [[maybe_unused]] int is_python) {
    ETWTRACE_PROBE7(function, id, begin, end, line, file, name, is_python);
}

ETWTRACE_PROBE_SITE void mark([[maybe_unused]] const char* text, [[maybe_unused]] int kind) {
    ETWTRACE_PROBE2(mark, text, kind);
}

ETWTRACE_PROBE_SITE void function_push([[maybe_unused]] uint32_t id, [[maybe_unused]] uint32_t caller,
                                       [[maybe_unused]] int caller_line) {
    ETWTRACE_PROBE3(function_push, id, caller, caller_line);
}

ETWTRACE_PROBE_SITE void function_pop([[maybe_unused]] uint32_t id) {
    ETWTRACE_PROBE1(function_pop, id);
}

}  // namespace site

ETWTRACE_PROBE_SITE void stack_sample([[maybe_unused]] const char* text) {
    if (stack_sample_enabled()) {
        ETWTRACE_PROBE1(stack_sample, text);
    }
}

void fire_mark(std::string_view text, format::MarkKind kind) {
    const bool stack = kind == format::MarkKind::StackSample;
    if (!(stack ? stack_sample_enabled() : mark_enabled())) {
        return;
    }
    std::string copy(text);
    if (stack) {
        stack_sample(copy.c_str());
    } else {
        mark(copy.c_str(), static_cast<int>(kind));
    }
}

}  // namespace etwtrace::probes

#undef ETWTRACE_PROBE_SITE
