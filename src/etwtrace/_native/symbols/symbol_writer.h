// symbol_writer.h - telling profilers what lives at an address of generated code.
//
// One interface, two writers:
//   * perf map  /tmp/perf-<pid>.map   "<start-hex> <size-hex> <name>" per line: read by perf,
//     bcc, bpftrace and eBPF profilers for anonymous executable memory;
//   * jitdump   <dir>/jit-<pid>.dump  perf's binary format (see jitdump.h): code bytes, unwind
//     tables and source lines, turned into ELF objects by `perf inject --jit`, which is what
//     lets DWARF call graphs unwind through generated code.
// SymbolPublisher drives both. It keeps no copy of what it published (that would double the
// memory per traced function): when a forked child needs files of its own, it asks its
// owner's SymbolSource to enumerate everything published so far and writes that again.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace etwtrace::symbols {

struct CodeSymbol {
    uint64_t address = 0;
    uint32_t size = 0;
    std::string name;      // e.g. "py::a.<locals>.b:/src/app.py"
    std::string filename;  // source file, for jitdump debug info ("" = none)
    int line = 0;          // first line in `filename`
    // The bytes to publish as the code (jitdump): empty = the `size` bytes at `address`.
    std::vector<uint8_t> code;
};

// DWARF unwind tables for one piece of code, laid out as perf's genelf expects (jitdump.h).
struct CodeUnwind {
    std::vector<uint8_t> data;  // .eh_frame then .eh_frame_hdr
    uint64_t eh_frame_hdr_size = 0;
    uint64_t mapped_size = 0;
};

class SymbolWriter {
public:
    virtual ~SymbolWriter() = default;
    // Creates this process's file; false with `error` set on failure.
    virtual bool open(pid_t pid, std::string* error) = 0;
    virtual bool write(const CodeSymbol& symbol) = 0;
    // Closes the file. In a forked child, releases the parent's file without writing to it.
    virtual void close() = 0;
    virtual const std::string& path() const = 0;
};

std::unique_ptr<SymbolWriter> make_perf_map_writer(std::string directory = "/tmp");
// `unwind` (may be empty) is attached to every code-load record.
std::unique_ptr<SymbolWriter> make_jitdump_writer(std::string directory, CodeUnwind unwind);

// Calls `emit` with every symbol published so far, in publication order.
using SymbolSource = std::function<void(const std::function<void(const CodeSymbol&)>& emit)>;

class SymbolPublisher {
public:
    void add_writer(std::unique_ptr<SymbolWriter> writer);
    void set_source(SymbolSource source);
    // Opens every writer's file for the current process (once); false + `error` on failure.
    bool open(std::string* error);
    bool is_open() const { return open_pid_ != 0; }
    // Writes `symbol` to every writer. Thread-safe. The source must list it from now on.
    void publish(const CodeSymbol& symbol);
    // In a forked child: drops the parent's files (untouched) and writes everything published
    // so far into files of its own. Called lazily by publish() too, if a fork is detected.
    void reopen_after_fork();
    // For pthread_atfork: hold the lock across fork() so the child never sees it taken.
    void lock() { mutex_.lock(); }
    void unlock() { mutex_.unlock(); }
    std::vector<std::string> paths() const;

private:
    bool open_locked(std::string* error);
    void reopen_locked();

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<SymbolWriter>> writers_;
    SymbolSource source_;
    pid_t open_pid_ = 0;
};

}  // namespace etwtrace::symbols
