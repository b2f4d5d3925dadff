// libFuzzer target for the trace reader, the stream (what etwtrace.read() uses) and the
// aggregator: any bytes must decode without crashing, hanging, reading out of bounds (ASan) or
// undefined behaviour (UBSan), the stacks they build must be walkable, and all three must
// agree on what they read. Built and run by tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>

#include <cstdlib>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "reader/trace_aggregate.h"
#include "reader/trace_reader.h"
#include "reader/trace_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    etwtrace::reader::TraceData trace;
    etwtrace::reader::decode(data, size, trace);
    size_t walked = 0;
    for (const auto& event : trace.events) {
        if (walked++ > 1000) {
            break;
        }
        (void)trace.stack(event.stack);
    }
    for (const auto& function : trace.functions) {
        (void)function.line_at(0);
        (void)function.line_at(0xffffffffu);
    }
    etwtrace::reader::TraceAggregate aggregate;
    etwtrace::reader::aggregate(data, size, aggregate);
    if (aggregate.events != trace.events.size() || aggregate.error != trace.error ||
        aggregate.unmatched_pops != trace.unmatched_pops || aggregate.truncated != trace.truncated) {
        std::abort();  // the two decoders disagree
    }
    for (uint32_t node = 0; node < aggregate.nodes.size() && node < 1000; ++node) {
        (void)aggregate.stack(node);
    }
    // The stream reads a file: the bytes through an anonymous memory file.
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != static_cast<ssize_t>(size)) {
        std::abort();
    }
    std::string error;
    auto index = etwtrace::reader::index_fd(fd, "fuzz", error);
    if (!index) {
        if (error != trace.error) {
            std::abort();  // the header is judged differently
        }
        return 0;
    }
    if (index->events != trace.events.size() || index->error != trace.error ||
        index->unmatched_pops != trace.unmatched_pops || index->truncated != trace.truncated ||
        index->samples.nodes.size() != trace.samples.nodes.size() ||
        index->samples.unknown_nodes != trace.samples.unknown_nodes ||
        index->sampler.present != trace.sampler.present) {
        std::abort();  // the sampler's tree and counters too: one builder, the same values
    }
    etwtrace::reader::TraceStream stream(index);
    etwtrace::reader::StreamEvent event;
    size_t streamed = 0;
    while (stream.next(event)) {
        ++streamed;
        uint32_t depth = 0;
        if (event.kind == etwtrace::reader::Kind::Sample) {  // a node of the sampler's tree
            const auto& nodes = index->samples.nodes;
            for (uint32_t node = event.stack; node != etwtrace::reader::kNoNode && depth < 64;
                 node = nodes.at(node).parent) {
                ++depth;
            }
            continue;
        }
        for (uint32_t node = event.stack; node != etwtrace::reader::kNoNode && depth < 64; node = stream.parent(node)) {
            ++depth;
        }
    }
    if (streamed != trace.events.size()) {
        std::abort();  // the stream lost or invented events
    }
    return 0;
}
