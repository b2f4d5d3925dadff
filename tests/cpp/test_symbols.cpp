// Units for symbol publishing (src/etwtrace/_native/symbols/): safe file creation in a shared
// directory, the perf map and jitdump formats, and re-publishing in a forked child.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "symbols/jitdump.h"
#include "symbols/safe_file.h"
#include "symbols/symbol_writer.h"
#include "thunks/arena.h"
#include "thunks/thunk.h"

using namespace etwtrace::symbols;

namespace {

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/etwtrace-symbols-test-XXXXXX";
        path_ = mkdtemp(tmpl);
    }
    ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

CodeSymbol symbol_at(const void* address, uint32_t size, const std::string& name, const std::string& file, int line) {
    CodeSymbol s;
    s.address = reinterpret_cast<uintptr_t>(address);
    s.size = size;
    s.name = name;
    s.filename = file;
    s.line = line;
    return s;
}

bool mapped_executable(const std::string& path) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        if (line.find(path) != std::string::npos && line.find("r-x") != std::string::npos) {
            return true;
        }
    }
    return false;
}

}  // namespace

// ---- open_private_file --------------------------------------------------------------------

TEST(OpenPrivateFile, CreatesMode0600) {
    TempDir dir;
    std::string error;
    int fd = open_private_file(dir.file("a.map"), OpenMode::Append, &error);
    ASSERT_GE(fd, 0) << error;
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    close(fd);
}

TEST(OpenPrivateFile, AppendNeverFollowsAPlantedSymlink) {
    TempDir dir;
    write_file(dir.file("victim"), "precious\n");
    ASSERT_EQ(symlink(dir.file("victim").c_str(), dir.file("perf-1.map").c_str()), 0);
    std::string error;
    int fd = open_private_file(dir.file("perf-1.map"), OpenMode::Append, &error);
    EXPECT_LT(fd, 0);
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(read_file(dir.file("victim")), "precious\n");
}

TEST(OpenPrivateFile, FreshReplacesAPlantedSymlinkWithoutTouchingItsTarget) {
    TempDir dir;
    write_file(dir.file("victim"), "precious\n");
    ASSERT_EQ(symlink(dir.file("victim").c_str(), dir.file("jit-1.dump").c_str()), 0);
    std::string error;
    int fd = open_private_file(dir.file("jit-1.dump"), OpenMode::Fresh, &error);
    ASSERT_GE(fd, 0) << error;
    ASSERT_EQ(write(fd, "ours", 4), 4);
    close(fd);
    struct stat st;
    ASSERT_EQ(lstat(dir.file("jit-1.dump").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(read_file(dir.file("victim")), "precious\n");
    EXPECT_EQ(read_file(dir.file("jit-1.dump")), "ours");
}

TEST(OpenPrivateFile, AppendRefusesHardLinksAndOthersFiles) {
    TempDir dir;
    write_file(dir.file("victim"), "precious\n");
    chmod(dir.file("victim").c_str(), 0600);
    ASSERT_EQ(link(dir.file("victim").c_str(), dir.file("perf-2.map").c_str()), 0);
    std::string error;
    EXPECT_LT(open_private_file(dir.file("perf-2.map"), OpenMode::Append, &error), 0) << "hard link";

    write_file(dir.file("perf-3.map"), "");
    chmod(dir.file("perf-3.map").c_str(), 0644);
    EXPECT_LT(open_private_file(dir.file("perf-3.map"), OpenMode::Append, &error), 0) << "readable by others";

    if (geteuid() == 0) {
        write_file(dir.file("perf-4.map"), "");
        chmod(dir.file("perf-4.map").c_str(), 0600);
        ASSERT_EQ(chown(dir.file("perf-4.map").c_str(), 65534, 65534), 0);
        EXPECT_LT(open_private_file(dir.file("perf-4.map"), OpenMode::Append, &error), 0) << "owned by nobody";
    }
    EXPECT_EQ(read_file(dir.file("victim")), "precious\n");
}

TEST(OpenPrivateFile, AppendKeepsWhatAnotherWriterOfOursWrote) {
    TempDir dir;
    std::string error;
    int fd = open_private_file(dir.file("perf-5.map"), OpenMode::Append, &error);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "cpython line\n", 13), 13);
    close(fd);
    fd = open_private_file(dir.file("perf-5.map"), OpenMode::Append, &error);
    ASSERT_GE(fd, 0) << error;
    ASSERT_EQ(write(fd, "our line\n", 9), 9);
    close(fd);
    EXPECT_EQ(read_file(dir.file("perf-5.map")), "cpython line\nour line\n");
}

TEST(OpenPrivateFile, JitdumpDirectoryFollowsJITDUMPDIR) {
    setenv("JITDUMPDIR", "/somewhere", 1);
    EXPECT_EQ(jitdump_directory(), "/somewhere");
    unsetenv("JITDUMPDIR");
    EXPECT_EQ(jitdump_directory(), "/tmp");
}

// ---- perf map ---------------------------------------------------------------------------------

TEST(PerfMap, OneLinePerSymbolInPerfsFormat) {
    TempDir dir;
    auto writer = make_perf_map_writer(dir.path());
    std::string error;
    ASSERT_TRUE(writer->open(4242, &error)) << error;
    EXPECT_EQ(writer->path(), dir.file("perf-4242.map"));
    auto* address = reinterpret_cast<void*>(0x7f0012345670);
    ASSERT_TRUE(writer->write(symbol_at(address, 16, "py::a.<locals>.b:/src/app.py", "/src/app.py", 3)));
    ASSERT_TRUE(writer->write(symbol_at(reinterpret_cast<void*>(0x10), 0x60, "py::odd\nname:x.py", "", 0)));
    writer->close();
    EXPECT_EQ(read_file(dir.file("perf-4242.map")),
              "7f0012345670 10 py::a.<locals>.b:/src/app.py\n10 60 py::odd?name:x.py\n");
}

// ---- jitdump ----------------------------------------------------------------------------------

TEST(Jitdump, RecordsFollowPerfsSpecification) {
    TempDir dir;
    etwtrace::thunks::ThunkArena arena;
    const auto& unwind = etwtrace::thunks::thunk_unwind_info();
    CodeUnwind code_unwind{unwind.data, unwind.eh_frame_hdr_size, unwind.mapped_size};
    auto writer = make_jitdump_writer(dir.path(), code_unwind);
    std::string error;
    ASSERT_TRUE(writer->open(getpid(), &error)) << error;
    EXPECT_TRUE(mapped_executable(writer->path())) << "perf finds the dump through this mapping";

    void* thunks[2] = {arena.allocate(), arena.allocate()};
    ASSERT_TRUE(writer->write(symbol_at(thunks[0], 16, "py::a:/src/app.py", "/src/app.py", 4)));
    ASSERT_TRUE(writer->write(symbol_at(thunks[1], 16, "py::b:/src/app.py", "/src/app.py", 7)));
    std::string path = writer->path();
    writer->close();

    std::string data = read_file(path);
    ASSERT_GE(data.size(), sizeof(jitdump::FileHeader));
    jitdump::FileHeader header;
    std::memcpy(&header, data.data(), sizeof(header));
    EXPECT_EQ(header.magic, jitdump::kMagic);
    EXPECT_EQ(header.version, 1u);
    EXPECT_EQ(header.total_size, 40u);
    EXPECT_EQ(header.elf_mach, 62u);
    EXPECT_EQ(header.pid, static_cast<uint32_t>(getpid()));

    std::vector<uint32_t> ids;
    uint64_t last_timestamp = 0;
    size_t offset = sizeof(header);
    int loads = 0;
    while (offset < data.size()) {
        jitdump::RecordPrefix prefix;
        ASSERT_LE(offset + sizeof(prefix), data.size());
        std::memcpy(&prefix, data.data() + offset, sizeof(prefix));
        ASSERT_GE(prefix.total_size, sizeof(prefix));
        ASSERT_LE(offset + prefix.total_size, data.size());
        EXPECT_GE(prefix.timestamp, last_timestamp);
        last_timestamp = prefix.timestamp;
        ids.push_back(prefix.id);
        const char* body = data.data() + offset;
        if (prefix.id == jitdump::JIT_CODE_DEBUG_INFO) {
            jitdump::DebugInfo info;
            std::memcpy(&info, body, sizeof(info));
            EXPECT_EQ(info.code_addr, reinterpret_cast<uintptr_t>(thunks[loads]));
            EXPECT_EQ(info.nr_entry, 1u);
            jitdump::DebugEntry entry;
            std::memcpy(&entry, body + sizeof(info), sizeof(entry));
            EXPECT_EQ(entry.addr, info.code_addr);
            EXPECT_EQ(entry.lineno, loads == 0 ? 4u : 7u);
            EXPECT_STREQ(body + sizeof(info) + sizeof(entry), "/src/app.py");
        } else if (prefix.id == jitdump::JIT_CODE_UNWINDING_INFO) {
            jitdump::UnwindingInfo info;
            std::memcpy(&info, body, sizeof(info));
            EXPECT_EQ(info.unwinding_size, unwind.data.size());
            EXPECT_EQ(info.eh_frame_hdr_size, unwind.eh_frame_hdr_size);
            EXPECT_EQ(info.mapped_size, unwind.mapped_size);
            EXPECT_EQ(std::memcmp(body + sizeof(info), unwind.data.data(), unwind.data.size()), 0);
            EXPECT_EQ(prefix.total_size % 8, 0u);
        } else if (prefix.id == jitdump::JIT_CODE_LOAD) {
            jitdump::CodeLoad load;
            std::memcpy(&load, body, sizeof(load));
            EXPECT_EQ(load.pid, static_cast<uint32_t>(getpid()));
            EXPECT_EQ(load.code_addr, reinterpret_cast<uintptr_t>(thunks[loads]));
            EXPECT_EQ(load.vma, load.code_addr);
            EXPECT_EQ(load.code_size, 16u);
            EXPECT_EQ(load.code_index, static_cast<uint64_t>(loads));
            const char* name = body + sizeof(load);
            EXPECT_STREQ(name, loads == 0 ? "py::a:/src/app.py" : "py::b:/src/app.py");
            size_t name_size = std::strlen(name) + 1;
            EXPECT_EQ(prefix.total_size, sizeof(load) + name_size + 16);
            EXPECT_EQ(std::memcmp(body + sizeof(load) + name_size, thunks[loads], 16), 0) << "code bytes";
            ++loads;
        } else {
            ADD_FAILURE() << "unexpected record " << prefix.id;
        }
        offset += prefix.total_size;
    }
    EXPECT_EQ(offset, data.size());
    // perf holds debug info and unwinding info until the next code load: they come first.
    std::vector<uint32_t> expected = {jitdump::JIT_CODE_DEBUG_INFO, jitdump::JIT_CODE_UNWINDING_INFO, jitdump::JIT_CODE_LOAD,
                                      jitdump::JIT_CODE_DEBUG_INFO, jitdump::JIT_CODE_UNWINDING_INFO, jitdump::JIT_CODE_LOAD};
    EXPECT_EQ(ids, expected);
}

// ---- publisher and fork -------------------------------------------------------------------------

TEST(SymbolPublisher, ForkedChildRepublishesIntoItsOwnFilesAndLeavesTheParentsAlone) {
    TempDir dir;
    SymbolPublisher publisher;
    publisher.add_writer(make_perf_map_writer(dir.path()));
    publisher.add_writer(make_jitdump_writer(dir.path(), CodeUnwind{}));
    std::vector<CodeSymbol> published;  // the owner's list: the publisher keeps no copy
    publisher.set_source([&published](const std::function<void(const CodeSymbol&)>& emit) {
        for (const CodeSymbol& symbol : published) {
            emit(symbol);
        }
    });
    std::string error;
    ASSERT_TRUE(publisher.open(&error)) << error;
    etwtrace::thunks::ThunkArena arena;
    void* a = arena.allocate();
    published.push_back(symbol_at(a, 16, "py::a:x.py", "x.py", 1));
    publisher.publish(published.back());
    std::string parent_map = dir.file("perf-" + std::to_string(getpid()) + ".map");
    std::string parent_dump = dir.file("jit-" + std::to_string(getpid()) + ".dump");
    std::string map_before = read_file(parent_map);
    std::string dump_before = read_file(parent_dump);

    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        void* b = arena.allocate();
        CodeSymbol symbol_b = symbol_at(b, 16, "py::b:x.py", "x.py", 2);
        publisher.publish(symbol_b);  // notices the new pid: re-publishes `a` first
        published.push_back(symbol_b);
        publisher.reopen_after_fork();                                  // no-op: already done
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    EXPECT_EQ(read_file(parent_map), map_before);
    EXPECT_EQ(read_file(parent_dump), dump_before);
    std::string child_map = read_file(dir.file("perf-" + std::to_string(child) + ".map"));
    EXPECT_NE(child_map.find("py::a:x.py"), std::string::npos) << "inherited thunk re-published";
    EXPECT_NE(child_map.find("py::b:x.py"), std::string::npos);
    EXPECT_LT(child_map.find("py::a:x.py"), child_map.find("py::b:x.py"));
    std::string child_dump = read_file(dir.file("jit-" + std::to_string(child) + ".dump"));
    EXPECT_NE(child_dump.find("py::a:x.py"), std::string::npos);
    EXPECT_NE(child_dump.find("py::b:x.py"), std::string::npos);
}
