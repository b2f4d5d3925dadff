"""The exact figures of instrumented trace files: calls, self time and inclusive time.

Without a time window the native `_etwtrace._trace_aggregate(path)` does the work: it walks the
file once keeping only its call tree (one node per distinct stack per thread, with calls, self
and inclusive ns), so its memory is bounded by the distinct stacks and a 100 M-event trace
takes seconds. Its nodes become the Profile's stacks (root first, from the node parents), its
per-function totals the Profile's `functions` (recomputed from the nodes when only some threads
are kept: inclusive time counts a function's outermost nodes only, so recursion counts once).

The native aggregate cannot clip by time: with --from/--to/--range the trace is read event by
event (`python_aggregate`, the same figures computed in Python, clipped to the window), which
decodes the whole file in memory and is much slower.

Neither keeps slices (one per call), which the timeline formats draw: those come from a
second, bounded pass over the events (`collect_slices`), at most SLICE_LIMIT calls per trace
file; beyond that the timeline stops and a health note says so.
"""

import os

from .._errors import ReadError
from .._read.events import mark_opcode
from .profile import FunctionStats, Slice

SLICE_LIMIT = 1_000_000
_CALL_EVENTS = frozenset({"PythonFunctionPush", "PythonFunctionPop"})


def native_aggregate(path):
    """`_etwtrace._trace_aggregate(path)`, or ReadError for a file it cannot read."""
    from .. import _etwtrace

    try:
        return _etwtrace._trace_aggregate(os.fspath(path))
    except (OSError, ValueError) as ex:
        raise ReadError(f"{path} is not a readable etwtrace trace file ({ex})") from None


def open_trace(path):
    from .._read import TraceFile

    try:
        return TraceFile(path)
    except (OSError, ValueError, RuntimeError) as ex:
        raise ReadError(f"{path} is not a readable etwtrace trace file ({ex})") from None


def marks(aggregate):
    """(timestamp, pid, tid, event name, opcode, text) of a native aggregate's marks."""
    pid = aggregate["info"]["pid"]
    for ts, tid, kind, text in aggregate["marks"]:
        name = "PythonStackSample" if kind == 3 else "PythonMark"
        yield ts, pid, tid, name, mark_opcode(kind), text


def count_health(profile, info):
    """A trace file's integrity counters into profile.health."""
    profile.health.lost_events += int(info.get("lost_events") or 0)
    if info.get("truncated") or info.get("error") or not info.get("complete", True):
        profile.health.truncated_traces += 1


def _span(profile, start_ns, end_ns):
    if start_ns and (not profile.start_ns or start_ns < profile.start_ns):
        profile.start_ns = start_ns
    if end_ns:
        profile.end_ns = max(profile.end_ns, end_ns)


def add_native(builder, aggregate):
    """The figures of one native aggregate into the Profile (filters: pid, tid, files)."""
    p = builder.p
    filters = builder.filters
    pid = aggregate["info"]["pid"]
    if filters.pids and pid not in filters.pids:
        return
    count_health(p, aggregate["info"])
    _span(p, aggregate["first_ns"], aggregate["last_ns"])
    functions = {f[0]: (f[1], f[2], f[3], bool(f[4])) for f in aggregate["functions"]}
    numbers = {}

    def number(fid):
        n = numbers.get(fid)
        if n is None:
            n = numbers[fid] = builder.trace_frame(*functions.get(fid, (f"<unknown function {fid}>", "", 0, False)))
        return n

    tids = filters.tids or None
    nodes = aggregate["nodes"]
    paths = [()] * len(nodes)  # node -> frame numbers, root first (threads not kept: ())
    kept = [False] * len(nodes)
    for (tid, node, calls, self_ns, _inclusive), (parent, fid) in zip(aggregate["stacks"], nodes):
        if tids is not None and tid not in tids:
            continue
        kept[node] = True
        paths[node] = (paths[parent] if parent is not None else ()) + (number(fid),)
        stack = builder.stack_number(paths[node])
        if stack is None:
            continue
        if self_ns:
            p.add("instrumented", pid, tid, stack, self_ns)
        if calls:
            p.add("calls", pid, tid, stack, calls)
    if tids is None:
        totals = aggregate["function_totals"]
    else:
        totals = _totals_of_nodes(aggregate, kept)
    for fid, calls, inclusive, exclusive in totals:
        function = functions.get(fid)
        if function is not None and function[3] and not filters.files([function[1]]):
            continue
        _add_function(p, number(fid), calls, inclusive, exclusive)


def _totals_of_nodes(aggregate, kept):
    """function_totals of the kept nodes only (their threads): [(fid, calls, inclusive, exclusive)]."""
    nodes = aggregate["nodes"]
    totals = {}
    for (_tid, node, calls, self_ns, inclusive), (parent, fid) in zip(aggregate["stacks"], nodes):
        if not kept[node]:
            continue
        total = totals.setdefault(fid, [0, 0, 0])
        total[0] += calls
        total[2] += self_ns
        while parent is not None and nodes[parent][1] != fid:
            parent = nodes[parent][0]
        if parent is None:  # no caller of the same function: an outermost call
            total[1] += inclusive
    return [(fid, *t) for fid, t in sorted(totals.items())]


def _add_function(p, number, calls, inclusive, exclusive):
    old = p.functions.get(number)
    if old is not None:
        calls, inclusive, exclusive = calls + old.calls, inclusive + old.inclusive_ns, exclusive + old.exclusive_ns
    p.functions[number] = FunctionStats(calls, inclusive, exclusive)


def add_windowed(builder, path, spans):
    """The figures of one trace file clipped to `spans` (the Python path: see the module)."""
    p = builder.p
    filters = builder.filters
    trace = open_trace(path)
    info = trace.info
    if filters.pids and info.get("pid") not in filters.pids:
        return
    count_health(p, info)
    aggregate = python_aggregate(trace, spans=spans, tids=filters.tids or None, timeline=builder.timeline)
    pid = aggregate["pid"]
    _span(p, aggregate["start_ns"], aggregate["end_ns"])
    functions = aggregate["functions"]
    numbers = {fid: builder.trace_frame(*functions[fid]) for fid in functions}
    for (tid, fids), (self_ns, calls) in aggregate["stacks"].items():
        stack = builder.stack_number(numbers[f] for f in fids)
        if stack is None:
            continue
        if self_ns:
            p.add("instrumented", pid, tid, stack, self_ns)
        if calls:
            p.add("calls", pid, tid, stack, calls)
    for fid, (calls, inclusive, exclusive) in aggregate["function_stats"].items():
        if functions[fid][3] and not filters.files([functions[fid][1]]):
            continue
        _add_function(p, numbers[fid], calls, inclusive, exclusive)
    for tid, start, end, fid, depth in aggregate["slices"]:
        p.slices.append(Slice(pid, tid, start, end, numbers[fid], depth))
    if aggregate["slices_capped"]:
        _capped_note(p, path)


def _capped_note(p, path, limit=SLICE_LIMIT):
    p.health.notes.append(f"the timeline shows only the first {limit:,} calls of {os.path.basename(path)} "
                          f"(the figures count every call); use --from/--to or --range for a later part")


def collect_slices(builder, path, limit=SLICE_LIMIT):
    """The timeline of one trace file: a Slice per call (at most `limit`, then the pass stops),
    and the stacks of its stack marks. Returns {(tid, timestamp): stack number} of those marks."""
    p = builder.p
    filters = builder.filters
    trace = open_trace(path)
    pid = trace.pid
    if filters.pids and pid not in filters.pids:
        return {}
    tids = filters.tids or None
    numbers = {}
    threads = {}  # tid -> [(function id, start)]
    stack_marks = {}
    last = count = 0
    capped = False
    for e in trace.events(tids, _CALL_EVENTS | {"PythonStackSample"}):
        ts = last = e.timestamp
        name = e.name
        if name == "PythonStackSample":
            if e.stack:
                stack_marks[(e.thread_id, ts)] = builder.sample_stack(e)
            continue
        frames = threads.setdefault(e.thread_id, [])
        if name == "PythonFunctionPush":
            frames.append((e["FunctionID"], ts))
        elif frames:
            if count >= limit:
                capped = True
                break
            count += 1
            fid, start = frames.pop()
            p.slices.append(Slice(pid, e.thread_id, start, ts, _number(builder, trace, numbers, fid), len(frames)))
    if capped:
        _capped_note(p, path, limit)
    else:
        for tid, frames in threads.items():  # calls still open where the trace ends
            while frames:
                fid, start = frames.pop()
                p.slices.append(Slice(pid, tid, start, last, _number(builder, trace, numbers, fid), len(frames)))
    return stack_marks


def _number(builder, trace, numbers, fid):
    n = numbers.get(fid)
    if n is None:
        f = trace.function_event(fid)
        n = numbers[fid] = builder.trace_frame(f["Name"], f["SourceFile"], f["LineNumber"], f["IsPythonCode"])
    return n


def python_aggregate(trace, spans=None, tids=None, timeline=False, slice_limit=SLICE_LIMIT):
    """Self time and calls per call stack, and exact per-function figures, of one trace file.

    The Python implementation of what the native `_trace_aggregate` computes, plus clipping to
    time spans and the timeline's slices (at most `slice_limit`):
    {"pid", "start_ns", "end_ns",
     "functions": {function id: (name, source file, first line, is Python)},
     "stacks": {(tid, (function ids, root first)): (self ns, calls ending with that stack)},
     "function_stats": {function id: (calls, inclusive ns with recursion counted once,
                                      exclusive ns)},
     "slices": [(tid, start, end, function id, depth)] when timeline,
     "slices_capped": whether slices stopped at slice_limit}.
    spans: [(start, end)] to keep (time outside is not counted; a call counts when it ends
    inside); tids: the thread ids to keep.
    """
    functions = {fid: (f[1], f[2], f[3], bool(f[4])) for fid, f in trace.functions.items()}
    stacks = {}
    stats = {}
    slices = []
    threads = {}  # tid -> [frames: [fid, start, node], last timestamp, {fid: active count}]
    nodes = {}  # (parent node, fid) -> node; node 0 is the empty stack
    node_stack = [()]  # node -> tuple of fids
    start_ns = end_ns = 0
    capped = [False]

    def clipped(a, b):
        if spans is None:
            return b - a
        return sum(max(0, min(b, e) - max(a, s)) for s, e in spans)

    def inside(t):
        return spans is None or any(s <= t <= e for s, e in spans)

    def account(tid, state, ts):
        frames = state[0]
        if frames and ts > state[1]:
            elapsed = clipped(state[1], ts)
            if elapsed:
                fid, _start, node = frames[-1]
                entry = stacks.setdefault((tid, node), [0, 0])
                entry[0] += elapsed
                stat = stats.setdefault(fid, [0, 0, 0])
                stat[2] += elapsed
        state[1] = ts

    def pop(tid, state, ts):
        fid, start, node = state[0].pop()
        active = state[2]
        active[fid] -= 1
        stat = stats.setdefault(fid, [0, 0, 0])
        if inside(ts):
            stat[0] += 1
            stacks.setdefault((tid, node), [0, 0])[1] += 1
        if not active[fid]:
            stat[1] += clipped(start, ts)
        if timeline and (spans is None or clipped(start, ts)):
            if len(slices) < slice_limit:
                slices.append((tid, start, ts, fid, len(state[0])))
            else:
                capped[0] = True

    for e in trace.events(names={"PythonFunctionPush", "PythonFunctionPop"}):
        ts = e.timestamp
        if not start_ns:
            start_ns = ts
        end_ns = ts
        tid = e.thread_id
        if tids is not None and tid not in tids:
            continue
        state = threads.get(tid)
        if state is None:
            state = threads[tid] = [[], ts, {}]
        account(tid, state, ts)
        if e.name == "PythonFunctionPush":
            fid = e["FunctionID"]
            parent = state[0][-1][2] if state[0] else 0
            node = nodes.get((parent, fid))
            if node is None:
                node = nodes[(parent, fid)] = len(node_stack)
                node_stack.append(node_stack[parent] + (fid,))
            state[0].append((fid, ts, node))
            state[2][fid] = state[2].get(fid, 0) + 1
        elif state[0]:
            pop(tid, state, ts)
    for tid, state in threads.items():  # calls still open where the trace ends (cut short)
        account(tid, state, end_ns)
        while state[0]:
            pop(tid, state, end_ns)
    return {
        "pid": trace.info.get("pid", 0),
        "start_ns": start_ns,
        "end_ns": end_ns,
        "functions": functions,
        "stacks": {(tid, node_stack[node]): tuple(v) for (tid, node), v in stacks.items()},
        "function_stats": {fid: tuple(v) for fid, v in stats.items()},
        "slices": slices,
        "slices_capped": capped[0],
    }
