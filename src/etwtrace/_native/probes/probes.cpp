#include "probes/probes.h"

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

}  // namespace etwtrace::probes
