// probes.h - the etwtrace USDT provider: one probe per upstream ETW event.
//
// Probes are SystemTap SDT notes (<sys/sdt.h>, Debian's systemtap-sdt-dev), which perf, bpftrace,
// bcc and SystemTap attach to as `sdt_etwtrace:<name>` / `usdt:...:etwtrace:<name>`. Each probe
// is guarded by its SDT semaphore, which a tracer increments while attached, so firing a probe
// costs one predictable load and branch when nobody listens. Each probe has exactly one site (one
// SDT note, so one uprobe per tracer), out of line in probes.cpp. Without sdt.h the probes compile to
// nothing and *_enabled() is always false.
//
// Probe (arguments)                                              upstream event
//   thread(thread_id u64, start i32: 1 start / 0 stop)           PythonThread
//   function(id u32, begin u64, end u64, line i32,
//            file char*, name char*, is_python i32)              PythonFunction
//   mark(text char*, kind i32: 0 mark / 1 start / 2 stop)        PythonMark
//   stack_sample(text char*)                                     PythonStackSample
//   function_push(id u32, caller u32, caller_line i32)           PythonFunctionPush
//   function_pop(id u32)                                         PythonFunctionPop
#pragma once

#include <cstdint>
#include <string_view>

#include "format/trace_format.h"

#ifdef ETWTRACE_HAVE_SDT
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

extern "C" {
// Defined in probes.cpp, in the ELF section ".probes" where tracers look for semaphores.
extern volatile unsigned short etwtrace_thread_semaphore;
extern volatile unsigned short etwtrace_function_semaphore;
extern volatile unsigned short etwtrace_mark_semaphore;
extern volatile unsigned short etwtrace_stack_sample_semaphore;
extern volatile unsigned short etwtrace_function_push_semaphore;
extern volatile unsigned short etwtrace_function_pop_semaphore;
}

#define ETWTRACE_PROBE_ENABLED(name) __builtin_expect(etwtrace_##name##_semaphore != 0, 0)
// STAP_PROBEV needs GNU extensions; the numbered forms work in strict C++20.
#define ETWTRACE_PROBE1(name, a) STAP_PROBE1(etwtrace, name, a)
#define ETWTRACE_PROBE2(name, a, b) STAP_PROBE2(etwtrace, name, a, b)
#define ETWTRACE_PROBE3(name, a, b, c) STAP_PROBE3(etwtrace, name, a, b, c)
#define ETWTRACE_PROBE7(name, a, b, c, d, e, f, g) STAP_PROBE7(etwtrace, name, a, b, c, d, e, f, g)
#else
#define ETWTRACE_PROBE_ENABLED(name) false
#define ETWTRACE_PROBE1(...) ((void)0)
#define ETWTRACE_PROBE2(...) ((void)0)
#define ETWTRACE_PROBE3(...) ((void)0)
#define ETWTRACE_PROBE7(...) ((void)0)
#endif

namespace etwtrace::probes {

inline bool thread_enabled() { return ETWTRACE_PROBE_ENABLED(thread); }
inline bool function_enabled() { return ETWTRACE_PROBE_ENABLED(function); }
inline bool mark_enabled() { return ETWTRACE_PROBE_ENABLED(mark); }
inline bool stack_sample_enabled() { return ETWTRACE_PROBE_ENABLED(stack_sample); }
inline bool function_push_enabled() { return ETWTRACE_PROBE_ENABLED(function_push); }
inline bool function_pop_enabled() { return ETWTRACE_PROBE_ENABLED(function_pop); }

// The probe sites themselves, out of line in probes.cpp: each probe fires from exactly one place
// in the library, so it has one SDT note and a tracer registers one uprobe for it. (A site
// inlined into each caller made one uprobe per call site, and every uprobe a tracer attaches
// costs it a kernel RCU grace period to register and another to remove: ~0.1 s each.)
// Callers reach them only through the inline wrappers below, so a site costs one load and a
// branch when nobody listens, and a call only while a tracer is attached.
namespace site {
void thread(uint64_t thread_id, int start);
void function(uint32_t id, uint64_t begin, uint64_t end, int line, const char* file, const char* name,
              int is_python);
void mark(const char* text, int kind);
void function_push(uint32_t id, uint32_t caller, int caller_line);
void function_pop(uint32_t id);
}  // namespace site

inline void thread(uint64_t thread_id, int start) {
    if (thread_enabled()) {
        site::thread(thread_id, start);
    }
}

inline void function(uint32_t id, uint64_t begin, uint64_t end, int line, const char* file, const char* name,
                     int is_python) {
    if (function_enabled()) {
        site::function(id, begin, end, line, file, name, is_python);
    }
}

inline void mark(const char* text, int kind) {
    if (mark_enabled()) {
        site::mark(text, kind);
    }
}

// Not inlined: the stack recorded at this probe must show the caller's frames exactly, and a
// stable probe address keeps the recorded stack's leaf predictable.
void stack_sample(const char* text);

// write_mark()'s probe in either mode: stack_sample for MarkKind::StackSample, else mark.
// Copies `text` only when the probe is attached (probes take NUL-terminated strings).
void fire_mark(std::string_view text, format::MarkKind kind);

inline void function_push(uint32_t id, uint32_t caller, int caller_line) {
    if (function_push_enabled()) {
        site::function_push(id, caller, caller_line);
    }
}

inline void function_pop(uint32_t id) {
    if (function_pop_enabled()) {
        site::function_pop(id);
    }
}

}  // namespace etwtrace::probes
