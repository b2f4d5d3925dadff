// kernel_symbols.h - names for the kernel frames of the sampler's samples (/proc/kallsyms).
//
// Reading /proc/kallsyms takes ~80 ms here (120,000 lines, most of it the kernel writing
// them): done in the resolver under the GIL it stalled the program that long at its first
// kernel frame, so a thread of the drain's loads the table while the drain keeps finding new
// threads, and rings are resolved once it is loaded.
#pragma once

#include <cstdint>
#include <string_view>

namespace etwtrace::sampler {

// Loads the table, once per process; safe from any thread, without the GIL. A second caller
// waits for the first one's load.
void load_kernel_symbols();
// The table is loaded (without waiting for a load under way).
bool kernel_symbols_loaded();

struct KernelSymbol {
    uint64_t start;
    std::string_view name;  // valid for the life of the process
};

// The text symbol at or before `address` (loads the table first if need be); false when there
// is none (kptr_restrict hides the addresses: the frame then keeps its address).
bool kernel_symbol(uint64_t address, KernelSymbol& out);

}  // namespace etwtrace::sampler
