// perf_map.cpp - /tmp/perf-<pid>.map, the text symbol file perf reads for anonymous code.
//
// The file is opened for appending and never truncated: on CPython 3.12+ the interpreter's own
// perf-map writer (PyUnstable_WritePerfMapEntry, used by -X perf and by other extensions) may
// share it, and each of our lines goes out in one write() to an O_APPEND descriptor, so lines
// from both writers never interleave or overwrite each other.
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>

#include "symbols/safe_file.h"
#include "symbols/symbol_writer.h"

namespace etwtrace::symbols {

namespace {

class PerfMapWriter final : public SymbolWriter {
public:
    explicit PerfMapWriter(std::string directory) : directory_(std::move(directory)) {}
    ~PerfMapWriter() override { close(); }

    bool open(pid_t pid, std::string* error) override {
        close();
        path_ = directory_ + "/perf-" + std::to_string(pid) + ".map";
        fd_ = open_private_file(path_, OpenMode::Append, error);
        return fd_ >= 0;
    }

    bool write(const CodeSymbol& symbol) override {
        if (fd_ < 0) {
            return false;
        }
        char head[48];
        int n = std::snprintf(head, sizeof(head), "%" PRIx64 " %" PRIx32 " ", symbol.address, symbol.size);
        std::string line(head, static_cast<size_t>(n));
        line.reserve(line.size() + symbol.name.size() + 1);
        for (char c : symbol.name) {
            line.push_back(c == '\n' || c == '\r' ? '?' : c);  // one symbol, one line
        }
        line.push_back('\n');
        return write_all(fd_, line.data(), line.size());
    }

    void close() override {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    const std::string& path() const override { return path_; }

private:
    std::string directory_;
    std::string path_;
    int fd_ = -1;
};

}  // namespace

std::unique_ptr<SymbolWriter> make_perf_map_writer(std::string directory) {
    return std::make_unique<PerfMapWriter>(std::move(directory));
}

}  // namespace etwtrace::symbols
