// arena.h - executable memory for thunks, one per traced Python function.
//
// The arena maps chunks read-write, writes every thunk slot of the chunk (each with its own
// salt), then switches the chunk to read+execute: no page is ever writable and executable at
// once, and executable pages are never written again. Chunks are added on demand and never
// unmapped, because a frame may return into a thunk at any time, even after tracing stopped.
//
// Not thread-safe: the caller serialises allocate() (the Python side holds the GIL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace etwtrace::thunks {

class ThunkArena {
public:
    // `chunk_bytes` is rounded up to whole pages; `salt_seed` goes into the high half of every
    // thunk's salt so that thunks of different runs differ too.
    explicit ThunkArena(size_t chunk_bytes = 64 * 1024, uint64_t salt_seed = 0);
    ThunkArena(const ThunkArena&) = delete;
    ThunkArena& operator=(const ThunkArena&) = delete;
    ~ThunkArena() = default;  // chunks are deliberately leaked: see above

    // A fresh thunk (kThunkSize bytes of read+execute memory), or nullptr if memory could
    // not be mapped (errno tells why).
    void* allocate();

    size_t thunk_count() const { return count_; }
    size_t stride() const { return stride_; }
    size_t chunk_count() const { return chunks_.size(); }
    // Bytes of mapped memory per thunk handed out so far (chunk overhead included).
    size_t mapped_bytes() const { return chunks_.size() * chunk_bytes_; }
    bool contains(const void* address) const;

private:
    bool add_chunk();

    size_t chunk_bytes_;
    size_t stride_;
    size_t per_chunk_;
    uint64_t salt_seed_;
    size_t count_ = 0;
    size_t used_in_chunk_ = 0;
    std::vector<uint8_t*> chunks_;
};

}  // namespace etwtrace::thunks
