// trace_aggregate.h - summarises a trace file (docs/trace-format.md) without keeping its
// events: per-stack and per-function call counts and times, for `etwtrace report`.
//
// No Python.h: bindings/trace_data.cpp exposes it as _etwtrace._trace_aggregate. Memory is
// bounded by the number of distinct stacks (per thread), functions and marks, never by the
// number of events: trace_reader.h keeps 32 bytes per event, this keeps nothing per event.
//
// Times follow the reader exactly (same decoding, same tick -> ns conversion: wire.h), so
// every total here equals what one would sum over reader::TraceData's events.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/trace_format.h"
#include "reader/trace_reader.h"

namespace etwtrace::reader {

// One node of a thread's call tree: a distinct stack (the path from a root to here) on one
// thread. Nodes of different threads are distinct even for equal stacks; roots have parent
// kNoNode. A node's index is stable and its parent always has a smaller index.
struct AggregateNode {
    uint32_t parent = kNoNode;
    uint32_t function_id = 0;
    uint32_t thread = 0;        // index into TraceAggregate::thread_ids
    uint64_t calls = 0;         // calls whose stack was exactly this one
    uint64_t self_ns = 0;       // time at this stack, not in a callee (exclusive)
    uint64_t inclusive_ns = 0;  // time at this stack, callees included
};

struct FunctionTotals {
    uint64_t calls = 0;
    uint64_t inclusive_ns = 0;  // recursion counted once: time under the outermost active call per thread
    uint64_t exclusive_ns = 0;
};

struct AggregateMark {
    uint64_t timestamp = 0;  // ns, CLOCK_MONOTONIC
    uint32_t thread = 0;     // index into thread_ids
    uint8_t kind = 0;        // format::MarkKind
    std::string text;
};

struct TraceAggregate : TraceSummary {  // the reader's integrity counters, same values
    std::vector<Function> functions;           // definitions, in file order (line tables dropped)
    std::vector<AggregateNode> nodes;
    std::vector<std::pair<uint32_t, FunctionTotals>> function_totals;  // by FunctionID, ascending
    std::vector<AggregateMark> marks;          // in each thread's order, threads interleaved by file order
    std::vector<uint64_t> thread_ids;          // native thread ids, in order of first chunk
    uint64_t first_ns = 0, last_ns = 0;        // earliest and latest event (0, 0: no events)
    uint64_t events = 0;
    uint64_t samples = 0;         // the sampler's samples (read() gives their stacks)
    uint64_t open_frames = 0;     // calls still open at the end, closed at last_ns (counted as calls)

    // The stack at `node`, leaf first, as FunctionIDs.
    std::vector<uint32_t> stack(uint32_t node) const;
};

// A time window [start, end] in CLOCK_MONOTONIC ns.
struct TimeSpan {
    uint64_t start = 0;
    uint64_t end = 0;
};

// Aggregates `size` bytes. Returns false when the header cannot be read (error set); otherwise
// true, with truncated/error describing a damaged body as the reader does. `consumed`, if set,
// is told now and then how many leading bytes will not be read again (aggregate_file uses it
// to drop those pages of its mapping).
//
// `spans`, if given, clips the figures to those windows (a report's --from/--to/--range): a
// call counts when it ends inside one, and only the time inside them is added up (self time,
// inclusive time; recursion still counted once).
bool aggregate(const uint8_t* data, size_t size, TraceAggregate& out,
               const std::function<void(size_t)>& consumed = nullptr, const std::vector<TimeSpan>* spans = nullptr);
bool aggregate_file(const std::string& path, TraceAggregate& out, const std::vector<TimeSpan>* spans = nullptr);

}  // namespace etwtrace::reader
