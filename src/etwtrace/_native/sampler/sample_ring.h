// sample_ring.h - one thread's samples, from its signal handler to the drain (no Python.h).
//
// Single producer (the sampled thread's signal handler, which never runs concurrently with
// itself: the signal is blocked while its handler runs) and single consumer (the drain, under
// the GIL). Plain words and two atomic indexes: nothing here allocates, locks or makes a call,
// so the producer side is async-signal-safe.
//
// A sample is kHeaderWords words followed by two words per Python frame, leaf first, then one
// per native frame, leaf first:
//   header = python frames | flags << 16 | native frames << 24, ticks (trace/clock.h) when
//   taken, the code-object death counter when taken (see sampler_resolve.cpp), then (code
//   pointer | kEntryFrame, instruction) per Python frame, as compat::walk_sampled_frames gives
//   them, then the native instruction addresses (kernel ones first, from the perf record;
//   then user space's, sampler/native_unwind.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace etwtrace::sampler {

inline constexpr size_t kMaxSampledFrames = 128;  // deeper stacks keep their leaf-most frames
inline constexpr size_t kMaxNativeFrames = 96;
inline constexpr size_t kMaxKernelFrames = 32;
inline constexpr size_t kHeaderWords = 3;
inline constexpr size_t kMaxSampleWords = kHeaderWords + 2 * kMaxSampledFrames + kMaxKernelFrames + kMaxNativeFrames;
inline constexpr uint64_t kEntryFrame = 1;  // code word's low bit: the first frame of an eval loop call

struct SampleRing {
    static constexpr size_t kWords = size_t{1} << 15;  // 256 KB: > 120 deepest samples between drains

    std::atomic<uint64_t> head{0};     // producer: words written
    std::atomic<uint64_t> tail{0};     // consumer: words consumed
    std::atomic<uint64_t> dropped{0};  // samples the producer found no room for
    uint64_t words[kWords];

    uint64_t& at(uint64_t index) { return words[index & (kWords - 1)]; }

    // Producer: room for one more sample of at most kMaxSampleWords?
    bool has_room() {
        uint64_t h = head.load(std::memory_order_relaxed);
        return kWords - (h - tail.load(std::memory_order_acquire)) >= kMaxSampleWords;
    }
};

}  // namespace etwtrace::sampler
