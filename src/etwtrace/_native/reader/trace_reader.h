// trace_reader.h - decodes a trace file (docs/trace-format.md) into flat event arrays.
// Also the event kinds and function definitions every reader shares.
//
// No Python.h: bindings/trace_data.cpp exposes the result to the Python readers. Decoding never reads past
// the input; a truncated tail (a process killed mid-write) ends the decode cleanly with
// `truncated` set, malformed input sets `error` and keeps what was decoded before it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format/trace_format.h"

namespace etwtrace::reader {

enum class Kind : uint8_t {
    Push = 1,
    Pop = 2,
    Function = 3,
    Mark = 4,         // PythonMark (mark_kind 0-2) or PythonStackSample (mark_kind 3)
    ThreadStart = 5,
    ThreadStop = 6,
    Sample = 7,       // the sampler's SampledProfile: stack = a sample_nodes index, mark_kind = flags
};

inline constexpr uint32_t kNoNode = 0xffffffffu;

struct Event {
    uint64_t timestamp = 0;    // ns, CLOCK_MONOTONIC (ticks until the decode finishes)
    uint32_t thread = 0;       // index into TraceData::thread_ids
    uint32_t function_id = 0;  // push/pop: the function; Function: its id
    union {
        uint32_t caller = 0;   // push: caller FunctionID
        uint32_t aux;          // Function: index in functions; Mark: index in marks
    };
    int32_t caller_line = 0;   // push: line in the caller (its bytecode offset until resolved)
    uint32_t stack = kNoNode;  // node of the stack at this event (push/pop: includes the function)
    Kind kind = Kind::Push;
    uint8_t mark_kind = 0;
};
static_assert(sizeof(Event) == 32, "keep Event at 32 bytes: the decoder's speed depends on it");

struct Function {
    uint32_t id = 0;
    bool is_python = false;
    int32_t line = 0;
    uint64_t begin = 0;
    uint64_t end = 0;
    std::string source_file;
    std::string name;
    std::vector<std::pair<uint32_t, int32_t>> lines;  // (offset, line) runs, sorted
    int32_t line_at(uint32_t offset) const;
};

struct StackNode {
    uint32_t parent = kNoNode;
    uint32_t function_id = 0;
};

// The sampler's stacks: a prefix tree, leaf to root through `parent` (kNoNode: the root).
struct SampleNode {
    uint32_t parent = kNoNode;
    uint32_t frame = 0;  // id << 1 | is_native (format::EventTag::StackNode)
    int32_t line = 0;
};

struct NativeSymbol {
    uint32_t id = 0;
    bool kernel = false;
    uint64_t address = 0;
    std::string module;
    std::string symbol;
};

// A file's StackNode and NativeSymbol events, resolved (reader/wire.h: SampleTreeBuilder):
// what every reader that gives samples their stacks keeps (bounded by the distinct stacks).
struct SampleTree {
    std::vector<SampleNode> nodes;
    std::vector<NativeSymbol> symbols;
    std::unordered_map<uint64_t, uint32_t> index;  // file node id -> nodes index
    uint64_t unknown_nodes = 0;  // samples or nodes naming a node never defined

    // The nodes index of file node `id` (0, or never defined: kNoNode).
    uint32_t node(uint64_t id) const {
        auto it = id ? index.find(id) : index.end();
        return it == index.end() ? kNoNode : it->second;
    }
};

// The sampler's counters (format::RecordType::SamplerStats).
struct SamplerStats {
    bool present = false;
    uint64_t samples = 0, dropped = 0, unresolved_frames = 0, truncated = 0, period_ns = 0, threads = 0, unmerged = 0;
    uint8_t source = 0;
};

// The header and integrity counters of a trace file: what every reader of it (the full decode
// here, the stream of trace_stream.h, the aggregate of trace_aggregate.h) reports, with the
// same meaning and values.
struct TraceSummary {
    format::FileHeader header;
    std::string python_version;
    SamplerStats sampler;
    uint64_t chunks = 0;
    uint64_t lost_events = 0;       // from LOSS/END records: events the writer could not store
    uint64_t unmatched_pops = 0;    // pops whose function is not the top of its thread's stack
    uint64_t sequence_gaps = 0;     // missing chunks (should be 0: the writer never drops)
    bool complete = false;          // END record seen (file closed cleanly)
    bool truncated = false;         // the last record is cut short
    std::string error;              // malformed input: where and what (the first in file order)
};

// The whole file in memory (32 bytes per event): the reference decode, which the C++ tests,
// the fuzzer and the decode-rate benchmark use; etwtrace.read() streams (trace_stream.h).
struct TraceData : TraceSummary {
    std::vector<Event> events;
    std::vector<Function> functions;
    std::unordered_map<uint32_t, uint32_t> function_index;  // FunctionID -> functions[i]
    std::vector<std::string> marks;
    std::vector<StackNode> nodes;
    std::vector<uint64_t> thread_ids;  // native thread ids (gettid)
    SampleTree samples;                // Kind::Sample events' stacks

    // The stack at `node`, leaf first, as FunctionIDs.
    std::vector<uint32_t> stack(uint32_t node) const;
};

struct ReadOptions {
    bool sort = true;  // order events by timestamp across threads (stable per thread)
};

// Decodes `size` bytes. Returns false when the header cannot be read (error set); otherwise
// true, with `truncated`/`error` describing a damaged body.
bool decode(const uint8_t* data, size_t size, TraceData& out, const ReadOptions& options = {});
bool read_file(const std::string& path, TraceData& out, const ReadOptions& options = {});

}  // namespace etwtrace::reader
