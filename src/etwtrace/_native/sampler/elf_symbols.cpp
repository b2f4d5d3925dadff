// elf_symbols.cpp - see elf_symbols.h.
#include "sampler/elf_symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

namespace etwtrace::sampler {

namespace {

bool read_at(int fd, void* out, size_t size, uint64_t offset) {
    auto* p = static_cast<char*>(out);
    while (size) {
        ssize_t n = pread(fd, p, size, static_cast<off_t>(offset));
        if (n <= 0) {
            return false;
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return true;
}

std::string demangled(const char* name) {
    if (name[0] != '_' || name[1] != 'Z') {
        return name;
    }
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string result = status == 0 && out ? out : name;
    std::free(out);
    return result;
}

}  // namespace

ElfSymbols::ElfSymbols(const std::string& path, uint64_t loaded_at) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    Elf64_Ehdr header{};
    if (!read_at(fd, &header, sizeof header, 0) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shnum == 0 ||
        header.e_shnum > 4096) {
        close(fd);
        return;
    }
    // A shared object's (or PIE's) symbol values are offsets from where it is loaded.
    bias_ = header.e_type == ET_DYN ? loaded_at : 0;
    std::vector<Elf64_Shdr> sections(header.e_shnum);
    if (!read_at(fd, sections.data(), sections.size() * sizeof(Elf64_Shdr), header.e_shoff)) {
        close(fd);
        return;
    }
    for (const Elf64_Shdr& section : sections) {
        if (section.sh_type != SHT_SYMTAB || section.sh_entsize != sizeof(Elf64_Sym) || section.sh_link >= sections.size()) {
            continue;
        }
        const Elf64_Shdr& names = sections[section.sh_link];
        constexpr uint64_t kMaxBytes = 256u << 20;  // a sanity bound on a damaged file
        if (section.sh_size > kMaxBytes || names.sh_size > kMaxBytes) {
            continue;
        }
        std::vector<Elf64_Sym> symbols(section.sh_size / sizeof(Elf64_Sym));
        std::vector<char> strings(names.sh_size + 1, '\0');
        if (!read_at(fd, symbols.data(), symbols.size() * sizeof(Elf64_Sym), section.sh_offset) ||
            !read_at(fd, strings.data(), names.sh_size, names.sh_offset)) {
            continue;
        }
        for (const Elf64_Sym& symbol : symbols) {
            if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_size == 0 || symbol.st_shndx == SHN_UNDEF ||
                symbol.st_name >= names.sh_size) {
                continue;
            }
            functions_.push_back(ElfFunction{symbol.st_value, symbol.st_size, demangled(&strings[symbol.st_name])});
        }
    }
    close(fd);
    std::sort(functions_.begin(), functions_.end(),
              [](const ElfFunction& a, const ElfFunction& b) { return a.start < b.start; });
}

const ElfFunction* ElfSymbols::find(uint64_t address) const {
    const uint64_t at = address - bias_;
    auto it = std::upper_bound(functions_.begin(), functions_.end(), at,
                               [](uint64_t a, const ElfFunction& f) { return a < f.start; });
    if (it == functions_.begin()) {
        return nullptr;
    }
    --it;
    return at < it->start + it->size ? &*it : nullptr;
}

const ElfSymbols& elf_symbols_of(const std::string& path, uint64_t loaded_at) {
    static auto* cache = new std::map<std::pair<std::string, uint64_t>, std::unique_ptr<ElfSymbols>>();
    auto& slot = (*cache)[{path, loaded_at}];
    if (!slot) {
        slot = std::make_unique<ElfSymbols>(path, loaded_at);
    }
    return *slot;
}

}  // namespace etwtrace::sampler
