// arena.h - executable memory for thunks, one per traced Python function.
//
// Every thunk is the same 16 bytes (code, then int3 padding), so all chunks share one
// physical copy: a sealed memfd holding one chunk's worth of thunks, written with pwrite()
// and mapped read+execute (never writable) once per chunk. Physical memory for thunks is one
// chunk however many functions are traced; each function costs only its slot of address
// space (the stride perf needs between thunks). Where memfd cannot be mapped executable
// (old kernels, vm.memfd_noexec), chunks are private anonymous memory, filled read-write
// then switched to read+execute. Either way no page is ever writable and executable at once,
// and chunks are never unmapped, because a frame may return into a thunk at any time, even
// after tracing stopped.
//
// perf needs every thunk's published bytes to differ (`perf inject --jit` derives build-ids
// from them and merges equal objects): published_code() gives the bytes to publish, the
// executable prefix followed by a salt unique to the thunk where memory holds int3.
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
    // published salt so that thunks of different runs differ too.
    explicit ThunkArena(size_t chunk_bytes = 64 * 1024, uint64_t salt_seed = 0);
    ThunkArena(const ThunkArena&) = delete;
    ThunkArena& operator=(const ThunkArena&) = delete;
    ~ThunkArena();  // closes the memfd; chunks are deliberately leaked: see above

    // A fresh thunk (kThunkSize bytes of read+execute memory), or nullptr if memory could
    // not be mapped (errno tells why).
    void* allocate();

    // What to publish as the code of `thunk` (kThunkSize bytes, see above).
    std::vector<uint8_t> published_code(const void* thunk) const;

    size_t thunk_count() const { return count_; }
    size_t stride() const { return stride_; }
    size_t chunk_count() const { return chunks_.size(); }
    // Address space mapped for thunks so far (chunk overhead included).
    size_t mapped_bytes() const { return chunks_.size() * chunk_bytes_; }
    // Physical memory the chunks use: one shared chunk, plus any private fallback chunks.
    size_t physical_bytes() const { return (shared_chunks_ ? chunk_bytes_ : 0) + private_chunks_ * chunk_bytes_; }
    bool contains(const void* address) const;

private:
    bool add_chunk();
    void* map_shared_chunk();
    void* map_private_chunk();
    void fill(uint8_t* chunk) const;

    size_t chunk_bytes_;
    size_t stride_;
    size_t per_chunk_;
    uint64_t salt_seed_;
    size_t count_ = 0;
    size_t used_in_chunk_ = 0;
    std::vector<uint8_t*> chunks_;
    int template_fd_ = -1;  // the sealed memfd every shared chunk maps
    bool template_tried_ = false;
    size_t shared_chunks_ = 0;
    size_t private_chunks_ = 0;
};

}  // namespace etwtrace::thunks
