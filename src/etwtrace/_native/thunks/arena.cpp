#include "thunks/arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include "thunks/thunk_x86_64.h"

namespace etwtrace::thunks {

ThunkArena::ThunkArena(size_t chunk_bytes, uint64_t salt_seed)
    : stride_(thunk_stride()), salt_seed_(salt_seed << 32) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    if (chunk_bytes < page) {
        chunk_bytes = page;
    }
    chunk_bytes_ = (chunk_bytes + page - 1) / page * page;
    per_chunk_ = chunk_bytes_ / stride_;
}

bool ThunkArena::add_chunk() {
    void* memory = mmap(nullptr, chunk_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        return false;
    }
    auto* base = static_cast<uint8_t*>(memory);
    // Fill every slot now, so the chunk never has to be writable again. Slack between thunks
    // is int3, so a stray jump into it traps instead of sliding into the next thunk.
    for (size_t i = 0; i < chunk_bytes_; ++i) {
        base[i] = 0xcc;
    }
    uint64_t first = chunks_.size() * per_chunk_;
    for (size_t slot = 0; slot < per_chunk_; ++slot) {
        write_thunk(base + slot * stride_, salt_seed_ | (first + slot));
    }
    if (mprotect(memory, chunk_bytes_, PROT_READ | PROT_EXEC) != 0) {
        munmap(memory, chunk_bytes_);  // never executable: safe to give back
        return false;
    }
    chunks_.push_back(base);
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
