// kernel_symbols.h - names for the kernel frames of the sampler's samples (/proc/kallsyms).
//
// Reading /proc/kallsyms takes ~80 ms here (120,000 lines, most of it the kernel writing
// them): done in the resolver under the GIL it stalled the program that long at its first
// kernel frame, so the drain thread loads the table before it first takes the GIL.
#pragma once

#include <cstdint>
#include <string_view>

namespace etwtrace::sampler {

// Loads the table, once per process; safe from any thread, without the GIL. A second caller
// waits for the first one's load.
void load_kernel_symbols();

struct KernelSymbol {
    uint64_t start;
    std::string_view name;  // valid for the life of the process
};

// The text symbol at or before `address` (loads the table first if need be); false when there
// is none (kptr_restrict hides the addresses: the frame then keeps its address).
bool kernel_symbol(uint64_t address, KernelSymbol& out);

}  // namespace etwtrace::sampler
