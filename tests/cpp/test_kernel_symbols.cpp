// Units for the sampler's kernel symbol table (src/etwtrace/_native/sampler/kernel_symbols.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sampler/kernel_symbols.h"

namespace {

struct Line {
    uint64_t address = 0;
    std::string name;
};

// A text symbol of /proc/kallsyms as the kernel lists it, to check the table against.
Line first_text_symbol_named(const std::string& wanted) {
    std::ifstream in("/proc/kallsyms");
    std::string text;
    while (std::getline(in, text)) {
        std::istringstream fields(text);
        std::string address, type, name;
        fields >> address >> type >> name;
        if ((type == "T" || type == "t") && name == wanted) {
            return Line{std::stoull(address, nullptr, 16), name};
        }
    }
    return Line{};
}

}  // namespace

TEST(KernelSymbols, AnAddressInsideAFunctionIsNamedByIt) {
    Line schedule = first_text_symbol_named("schedule");
    if (schedule.address == 0) {
        GTEST_SKIP() << "kernel addresses are hidden here (kptr_restrict, not root): the sampler keeps "
                        "kernel frames as addresses";
    }
    // Loaded from several threads at once: one load, every caller sees the whole table.
    std::vector<std::thread> loaders;
    for (int i = 0; i < 4; ++i) {
        loaders.emplace_back(etwtrace::sampler::load_kernel_symbols);
    }
    for (auto& t : loaders) {
        t.join();
    }
    etwtrace::sampler::KernelSymbol found{};
    ASSERT_TRUE(etwtrace::sampler::kernel_symbol(schedule.address + 1, found));
    EXPECT_EQ(found.start, schedule.address);
    EXPECT_EQ(found.name, "schedule");
    EXPECT_FALSE(etwtrace::sampler::kernel_symbol(0x1000, found));  // below every kernel symbol
}
