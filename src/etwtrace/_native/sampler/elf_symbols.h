// elf_symbols.h - the function symbols of a loaded module's file (.symtab), for the native
// frames that dladdr cannot name: dladdr knows only the dynamic symbols, and static functions
// (most of an interpreter's and an extension's C code) are not among them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace etwtrace::sampler {

struct ElfFunction {
    uint64_t start;  // relative to the module's load address (absolute in a non-PIE executable)
    uint64_t size;
    std::string name;  // demangled where it is a C++ name
};

class ElfSymbols {
public:
    // Reads `path`'s .symtab (none in a stripped file: then every lookup fails). `loaded_at` is
    // the module's load address (dladdr's dli_fbase).
    ElfSymbols(const std::string& path, uint64_t loaded_at);

    // The function containing `address` (an address in this process), or nullptr.
    const ElfFunction* find(uint64_t address) const;
    // What `find`'s start is relative to: add it for the function's address in this process.
    uint64_t bias() const { return bias_; }
    size_t size() const { return functions_.size(); }

private:
    std::vector<ElfFunction> functions_;  // by start
    uint64_t bias_ = 0;
};

// One ElfSymbols per module path, read at its first use (not async-signal-safe: the drain's).
const ElfSymbols& elf_symbols_of(const std::string& path, uint64_t loaded_at);

}  // namespace etwtrace::sampler
