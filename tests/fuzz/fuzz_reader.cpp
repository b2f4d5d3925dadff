// libFuzzer target for the trace reader: any bytes must decode without crashing, hanging,
// reading out of bounds (ASan) or undefined behaviour (UBSan), and the stacks it builds must
// be walkable. Built and run by tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>

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
    return 0;
}
