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

namespace etwtrace::probes {

__attribute__((noinline)) void stack_sample([[maybe_unused]] const char* text) {
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
