#include "thunks/arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "thunks/thunk.h"

namespace etwtrace::thunks {

namespace {
constexpr uint8_t kInt3 = 0xcc;
constexpr uint64_t kInt3Salt = 0xccccccccccccccccull;  // memory's "salt": never executed, traps if jumped to
}  // namespace

ThunkArena::ThunkArena(size_t chunk_bytes, uint64_t salt_seed)
    : stride_(thunk_stride()), salt_seed_(salt_seed << 32) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    if (chunk_bytes < page) {
        chunk_bytes = page;
    }
    chunk_bytes_ = (chunk_bytes + page - 1) / page * page;
    per_chunk_ = chunk_bytes_ / stride_;
}

ThunkArena::~ThunkArena() {
    if (template_fd_ >= 0) {
        close(template_fd_);  // the mappings keep the memory alive
    }
}

// Every slot gets the same thunk; slack between thunks is int3, so a stray jump into it traps
// instead of sliding into the next thunk.
void ThunkArena::fill(uint8_t* chunk) const {
    std::memset(chunk, kInt3, chunk_bytes_);
    for (size_t slot = 0; slot < per_chunk_; ++slot) {
        write_thunk(chunk + slot * stride_, kInt3Salt);
    }
}

void* ThunkArena::map_shared_chunk() {
    if (!template_tried_) {
        template_tried_ = true;
        int fd = memfd_create("etwtrace-thunks", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
            return nullptr;
        }
        std::vector<uint8_t> bytes(chunk_bytes_);
        fill(bytes.data());
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                close(fd);
                return nullptr;
            }
            done += static_cast<size_t>(n);
        }
        // Sealed: the thunks can never change again, through any mapping or the descriptor.
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
            close(fd);
            return nullptr;
        }
        template_fd_ = fd;
    }
    if (template_fd_ < 0) {
        return nullptr;
    }
    void* memory = mmap(nullptr, chunk_bytes_, PROT_READ | PROT_EXEC, MAP_SHARED, template_fd_, 0);
    if (memory == MAP_FAILED) {
        close(template_fd_);  // e.g. vm.memfd_noexec: do not try again
        template_fd_ = -1;
        return nullptr;
    }
    ++shared_chunks_;
    return memory;
}

void* ThunkArena::map_private_chunk() {
    void* memory = mmap(nullptr, chunk_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        return nullptr;
    }
    fill(static_cast<uint8_t*>(memory));
    if (mprotect(memory, chunk_bytes_, PROT_READ | PROT_EXEC) != 0) {
        munmap(memory, chunk_bytes_);  // never executable: safe to give back
        return nullptr;
    }
    ++private_chunks_;
    return memory;
}

bool ThunkArena::add_chunk() {
    void* memory = map_shared_chunk();
    if (memory == nullptr) {
        memory = map_private_chunk();
    }
    if (memory == nullptr) {
        return false;
    }
    chunks_.push_back(static_cast<uint8_t*>(memory));
    used_in_chunk_ = 0;
    return true;
}

void* ThunkArena::allocate() {
    if (chunks_.empty() || used_in_chunk_ == per_chunk_) {
        if (!add_chunk()) {
            return nullptr;
        }
    }
    void* thunk = chunks_.back() + used_in_chunk_ * stride_;
    ++used_in_chunk_;
    ++count_;
    return thunk;
}

std::vector<uint8_t> ThunkArena::published_code(const void* thunk) const {
    std::vector<uint8_t> code(kThunkSize);
    // Unique within the process (addresses are) and, through the seed, across runs.
    write_thunk(code.data(), salt_seed_ ^ static_cast<uint64_t>(reinterpret_cast<uintptr_t>(thunk)));
    return code;
}

bool ThunkArena::contains(const void* address) const {
    auto* p = static_cast<const uint8_t*>(address);
    for (uint8_t* chunk : chunks_) {
        if (p >= chunk && p < chunk + chunk_bytes_) {
            return true;
        }
    }
    return false;
}

}  // namespace etwtrace::thunks
