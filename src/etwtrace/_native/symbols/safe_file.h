// safe_file.h - creating symbol files in a shared, world-writable directory such as /tmp.
//
// Anyone can create /tmp/perf-<pid>.map or /tmp/jit-<pid>.dump before we do: a symlink to a
// file of ours, a hard link, or a file they own and read. These helpers never follow a
// symlink, create files with mode 0600, and refuse to write into a file that is not a plain,
// single-link file owned by us.
#pragma once

#include <cstddef>
#include <string>

namespace etwtrace::symbols {

enum class OpenMode {
    // Append to the file if it is already ours (a perf map shared with CPython's own writer),
    // else create it.
    Append,
    // Always a new file of our own (read-write): an existing entry of that name is removed
    // (unlink never follows links) and the file created exclusively.
    Fresh,
};

// Returns an O_CLOEXEC file descriptor, or -1 with `error` describing what went wrong.
int open_private_file(const std::string& path, OpenMode mode, std::string* error);

// Writes all of `size` bytes, retrying short writes and EINTR; false on any other error.
bool write_all(int fd, const void* data, size_t size);

// Directory for jitdump files: $JITDUMPDIR if set and non-empty, else /tmp.
std::string jitdump_directory();

}  // namespace etwtrace::symbols
