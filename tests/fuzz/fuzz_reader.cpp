// libFuzzer target for the trace reader and the streaming aggregator: any bytes must decode
// without crashing, hanging, reading out of bounds (ASan) or undefined behaviour (UBSan), the
// stacks both build must be walkable, and both must agree on what they read. Built and run by
// tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>

#include <cstdlib>

#include "reader/trace_aggregate.h"
#include "reader/trace_reader.h"

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
    return 0;
}
