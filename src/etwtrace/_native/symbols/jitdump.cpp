// jitdump.cpp - writes <dir>/jit-<pid>.dump (format and perf's reading of it: jitdump.h).
#include "symbols/jitdump.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "platform/linux.h"
#include "symbols/safe_file.h"
#include "symbols/symbol_writer.h"
#include "thunks/thunk.h"

namespace etwtrace::symbols {

namespace {

using platform::monotonic_ns;

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
    out.insert(out.end(), bytes, bytes + sizeof(T));
}

void append_string(std::vector<uint8_t>& out, const std::string& text) {
    out.insert(out.end(), text.begin(), text.end());
    out.push_back(0);
}

void pad8(std::vector<uint8_t>& out, size_t record_start) {
    while ((out.size() - record_start) % 8 != 0) {
        out.push_back(0);
    }
}

void set_size(std::vector<uint8_t>& out, size_t record_start) {
    uint32_t size = static_cast<uint32_t>(out.size() - record_start);
    std::memcpy(out.data() + record_start + offsetof(jitdump::RecordPrefix, total_size), &size, sizeof(size));
}

class JitdumpWriter final : public SymbolWriter {
public:
    JitdumpWriter(std::string directory, CodeUnwind unwind)
        : directory_(std::move(directory)), unwind_(std::move(unwind)) {}
    ~JitdumpWriter() override { close(); }

    bool open(pid_t pid, std::string* error) override {
        close();
        path_ = directory_ + "/jit-" + std::to_string(pid) + ".dump";
        fd_ = open_private_file(path_, OpenMode::Fresh, error);
        if (fd_ < 0) {
            return false;
        }
        pid_ = static_cast<uint32_t>(pid);
        jitdump::FileHeader header{};
        header.magic = jitdump::kMagic;
        header.version = jitdump::kVersion;
        header.total_size = sizeof(header);
        header.elf_mach = thunks::kElfMachine;
        header.pid = pid_;
        header.timestamp = monotonic_ns();
        header.flags = 0;
        if (!write_all(fd_, &header, sizeof(header))) {
            *error = "cannot write " + path_ + ": " + std::strerror(errno);
            close();
            return false;
        }
        // perf learns about the dump from this mapping (an MMAP record with PROT_EXEC).
        long page = sysconf(_SC_PAGESIZE);
        void* marker = mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_EXEC, MAP_PRIVATE, fd_, 0);
        if (marker == MAP_FAILED) {
            *error = "cannot map " + path_ + " for perf: " + std::strerror(errno);
            close();
            return false;
        }
        marker_ = marker;
        marker_size_ = static_cast<size_t>(page);
        next_index_ = 0;
        return true;
    }

    bool write(const CodeSymbol& symbol) override {
        if (fd_ < 0) {
            return false;
        }
        buffer_.clear();
        const uint64_t now = monotonic_ns();
        const uint32_t tid = static_cast<uint32_t>(platform::thread_id());

        if (!symbol.filename.empty()) {
            size_t start = buffer_.size();
            jitdump::DebugInfo info{};
            info.p.id = jitdump::JIT_CODE_DEBUG_INFO;
            info.p.timestamp = now;
            info.code_addr = symbol.address;
            info.nr_entry = 1;
            append(buffer_, info);
            jitdump::DebugEntry entry{};
            entry.addr = symbol.address;
            entry.lineno = static_cast<uint32_t>(symbol.line > 0 ? symbol.line : 0);
            append(buffer_, entry);
            append_string(buffer_, symbol.filename);
            pad8(buffer_, start);
            set_size(buffer_, start);
        }
        if (!unwind_.data.empty()) {
            size_t start = buffer_.size();
            jitdump::UnwindingInfo info{};
            info.p.id = jitdump::JIT_CODE_UNWINDING_INFO;
            info.p.timestamp = now;
            info.unwinding_size = unwind_.data.size();
            info.eh_frame_hdr_size = unwind_.eh_frame_hdr_size;
            info.mapped_size = unwind_.mapped_size;
            append(buffer_, info);
            buffer_.insert(buffer_.end(), unwind_.data.begin(), unwind_.data.end());
            pad8(buffer_, start);
            set_size(buffer_, start);
        }
        {
            size_t start = buffer_.size();
            jitdump::CodeLoad load{};
            load.p.id = jitdump::JIT_CODE_LOAD;
            load.p.timestamp = now;
            load.pid = pid_;
            load.tid = tid;
            load.vma = symbol.address;
            load.code_addr = symbol.address;
            load.code_size = symbol.size;
            load.code_index = next_index_++;
            append(buffer_, load);
            append_string(buffer_, symbol.name);
            if (symbol.code.size() == symbol.size) {
                buffer_.insert(buffer_.end(), symbol.code.begin(), symbol.code.end());
            } else {
                const auto* code = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(symbol.address));
                buffer_.insert(buffer_.end(), code, code + symbol.size);
            }
            set_size(buffer_, start);
        }
        return write_all(fd_, buffer_.data(), buffer_.size());
    }

    void close() override {
        if (marker_) {
            munmap(marker_, marker_size_);
            marker_ = nullptr;
        }
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    const std::string& path() const override { return path_; }

private:
    std::string directory_;
    CodeUnwind unwind_;
    std::string path_;
    std::vector<uint8_t> buffer_;
    int fd_ = -1;
    uint32_t pid_ = 0;
    void* marker_ = nullptr;
    size_t marker_size_ = 0;
    uint64_t next_index_ = 0;
};

}  // namespace

std::unique_ptr<SymbolWriter> make_jitdump_writer(std::string directory, CodeUnwind unwind) {
    return std::make_unique<JitdumpWriter>(std::move(directory), std::move(unwind));
}

}  // namespace etwtrace::symbols
