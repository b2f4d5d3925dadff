// kernel_symbols.cpp - see kernel_symbols.h.
#include "sampler/kernel_symbols.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace etwtrace::sampler {

namespace {

struct Table {
    std::vector<std::pair<uint64_t, uint32_t>> entries;  // start, offset of the name in `names`
    std::string names;                                    // NUL-separated
};

Table* g_table = nullptr;
std::once_flag g_loaded;
std::atomic<bool> g_ready{false};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One line: "ffffffff81000000 T _stext" (modules append "\t[module]").
void parse_line(std::string_view line, Table& table) {
    uint64_t address = 0;
    size_t i = 0;
    for (; i < line.size() && hex_digit(line[i]) >= 0; ++i) {
        address = address << 4 | static_cast<uint64_t>(hex_digit(line[i]));
    }
    if (address == 0 || i + 3 >= line.size() || line[i] != ' ' || line[i + 2] != ' ') {
        return;  // hidden addresses (0) or not a symbol line
    }
    const char type = line[i + 1];
    if (type != 't' && type != 'T' && type != 'w' && type != 'W') {
        return;
    }
    std::string_view name = line.substr(i + 3);
    name = name.substr(0, name.find_first_of(" \t"));
    table.entries.emplace_back(address, static_cast<uint32_t>(table.names.size()));
    table.names.append(name);
    table.names.push_back('\0');
}

void load() {
    auto* table = new Table();
    int fd = open("/proc/kallsyms", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        std::string pending;
        char buffer[1 << 16];
        for (;;) {
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0) {
                break;
            }
            pending.append(buffer, static_cast<size_t>(n));
            size_t start = 0;
            for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
                parse_line(std::string_view(pending).substr(start, end - start), *table);
            }
            pending.erase(0, start);
        }
        close(fd);
    }
    std::sort(table->entries.begin(), table->entries.end());
    g_table = table;
    g_ready.store(true, std::memory_order_release);
}

}  // namespace

void load_kernel_symbols() { std::call_once(g_loaded, load); }

bool kernel_symbols_loaded() { return g_ready.load(std::memory_order_acquire); }

bool kernel_symbol(uint64_t address, KernelSymbol& out) {
    load_kernel_symbols();
    const auto& entries = g_table->entries;
    auto it = std::upper_bound(entries.begin(), entries.end(), address,
                               [](uint64_t a, const std::pair<uint64_t, uint32_t>& e) { return a < e.first; });
    if (it == entries.begin()) {
        return false;
    }
    --it;
    out.start = it->first;
    out.name = std::string_view(g_table->names.data() + it->second);
    return true;
}

}  // namespace etwtrace::sampler
