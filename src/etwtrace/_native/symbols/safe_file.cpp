#include "symbols/safe_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace etwtrace::symbols {

namespace {

std::string describe(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// True when `fd` is a regular file with one link, owned by us, that only we can access.
bool is_private_file(int fd, const std::string& path, std::string* error) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *error = describe("cannot stat", path);
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        *error = path + " exists but is not a private regular file owned by this user; not writing to it";
        return false;
    }
    return true;
}

}  // namespace

int open_private_file(const std::string& path, OpenMode mode, std::string* error) {
    const int create = O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    const int access = mode == OpenMode::Append ? (O_WRONLY | O_APPEND) : O_RDWR;
    for (int attempt = 0; attempt < 2; ++attempt) {
        int fd = open(path.c_str(), create | access, 0600);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EEXIST) {
            *error = describe("cannot create", path);
            return -1;
        }
        if (mode == OpenMode::Append) {
            fd = open(path.c_str(), access | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0) {
                // ELOOP: a symbolic link; ENXIO etc.: a FIFO or socket without a reader.
                *error = describe("refusing to open", path);
                return -1;
            }
            if (!is_private_file(fd, path, error)) {
                close(fd);
                return -1;
            }
            int flags = fcntl(fd, F_GETFL);
            if (flags >= 0) {
                fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
            }
            return fd;
        }
        // Fresh: take the name over. unlink() removes a planted link, not what it points to.
        if (unlink(path.c_str()) != 0 && errno != ENOENT) {
            *error = describe("cannot replace", path);
            return -1;
        }
    }
    *error = path + " keeps reappearing; not writing to it";
    return -1;
}

std::string jitdump_directory() {
    const char* dir = std::getenv("JITDUMPDIR");
    if (dir && *dir) {
        return dir;
    }
    return "/tmp";
}

bool write_all(int fd, const void* data, size_t size) {
    const auto* bytes = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, bytes, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        bytes += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

}  // namespace etwtrace::symbols
