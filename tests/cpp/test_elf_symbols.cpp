// Units for the sampler's static-symbol lookup (src/etwtrace/_native/sampler/elf_symbols.h):
// functions that dladdr cannot name (not exported) are found in the file's .symtab.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdint>
#include <string>

#include "sampler/elf_symbols.h"

namespace {

// Not exported (internal linkage), so invisible to dladdr; kept out of line so it has an address
// and a .symtab entry of its own.
__attribute__((noinline)) int local_function_for_the_test(int x) {
    asm volatile("" : "+r"(x));
    return x * 3 + 1;
}

}  // namespace

TEST(ElfSymbols, NamesAFunctionDladdrCannot) {
    auto address = reinterpret_cast<uint64_t>(&local_function_for_the_test);
    Dl_info info{};
    ASSERT_NE(dladdr(reinterpret_cast<void*>(address), &info), 0);
    EXPECT_EQ(info.dli_sname, nullptr);  // the point: dladdr alone leaves it unnamed

    const auto& symbols = etwtrace::sampler::elf_symbols_of("/proc/self/exe", reinterpret_cast<uint64_t>(info.dli_fbase));
    ASSERT_GT(symbols.size(), 0u);
    for (uint64_t inside : {address, address + 1}) {
        const auto* function = symbols.find(inside);
        ASSERT_NE(function, nullptr);
        EXPECT_EQ(function->name, "(anonymous namespace)::local_function_for_the_test(int)");  // demangled
        EXPECT_EQ(function->start + symbols.bias(), address);
    }
    EXPECT_EQ(local_function_for_the_test(2), 7);
}

TEST(ElfSymbols, AFileWithoutSymbolsNamesNothing) {
    etwtrace::sampler::ElfSymbols missing("/nonexistent/file.so", 0);
    EXPECT_EQ(missing.size(), 0u);
    EXPECT_EQ(missing.find(0x1000), nullptr);
    etwtrace::sampler::ElfSymbols not_elf("/proc/self/status", 0);
    EXPECT_EQ(not_elf.size(), 0u);
}

TEST(ElfSymbols, AnAddressBetweenFunctionsIsNoFunction) {
    Dl_info info{};
    ASSERT_NE(dladdr(reinterpret_cast<void*>(&local_function_for_the_test), &info), 0);
    const auto& symbols = etwtrace::sampler::elf_symbols_of("/proc/self/exe", reinterpret_cast<uint64_t>(info.dli_fbase));
    EXPECT_EQ(symbols.find(symbols.bias()), nullptr);  // the file's first byte is a header, no code
}
