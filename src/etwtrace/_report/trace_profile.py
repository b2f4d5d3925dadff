"""The exact figures of instrumented trace files: calls, self time and inclusive time.

Without a time window the native `_etwtrace._trace_aggregate(path)` does the work: it walks the
file once keeping only its call tree (one node per distinct stack per thread, with calls, self
and inclusive ns), so its memory is bounded by the distinct stacks and a 100 M-event trace
takes seconds. Its nodes become the Profile's stacks (root first, from the node parents), its
per-function totals the Profile's `functions` (recomputed from the nodes when only some threads
are kept: inclusive time counts a function's outermost nodes only, so recursion counts once).

With --from/--to/--range the same native pass clips the figures to the window's spans
(`_trace_aggregate(path, spans)`: a call counts when it ends inside, only the time inside is
added up), so a windowed report streams as fast and in as little memory.

Neither keeps slices (one per call), which the timeline formats draw: those come from a
second, bounded pass over the streamed events (`collect_slices`), at most SLICE_LIMIT calls per
trace file; beyond that the timeline stops and a health note says so.
"""

import os

from .._errors import ReadError
from .._read.events import mark_opcode
from .profile import FunctionStats, Slice

SLICE_LIMIT = 1_000_000
_CALL_EVENTS = frozenset({"PythonFunctionPush", "PythonFunctionPop"})


def native_aggregate(path, spans=None):
    """`_etwtrace._trace_aggregate(path, spans)`, or ReadError for a file it cannot read."""
    from .. import _etwtrace

    try:
        return _etwtrace._trace_aggregate(os.fspath(path), spans)
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
    """The figures of one trace file clipped to `spans` [(start, end)] (natively, as add_native)."""
    add_native(builder, native_aggregate(path, [(max(0, s), max(0, e)) for s, e in spans]))


def _capped_note(p, path, limit=SLICE_LIMIT):
    p.health.notes.append(f"the timeline shows only the first {limit:,} calls of {os.path.basename(path)} "
                          f"(the figures count every call); use --from/--to or --range for a later part")


def collect_slices(builder, path, limit=SLICE_LIMIT, *, spans=None):
    """The timeline of one trace file: a Slice per call (at most `limit`, then the pass stops;
    with `spans`, only the calls that overlap them), and the stacks of its stack marks.
    Returns {(tid, timestamp): stack number} of those marks."""
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

    def kept(start, end):
        return spans is None or any(min(end, e) > max(start, s) for s, e in spans)

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
            fid, start = frames.pop()
            if kept(start, ts):
                count += 1
                p.slices.append(Slice(pid, e.thread_id, start, ts, _number(builder, trace, numbers, fid), len(frames)))
    if capped:
        _capped_note(p, path, limit)
    else:
        for tid, frames in threads.items():  # calls still open where the trace ends
            while frames:
                fid, start = frames.pop()
                if kept(start, last):
                    p.slices.append(Slice(pid, tid, start, last, _number(builder, trace, numbers, fid), len(frames)))
    return stack_marks


def _number(builder, trace, numbers, fid):
    n = numbers.get(fid)
    if n is None:
        f = trace.function_event(fid)
        n = numbers[fid] = builder.trace_frame(f["Name"], f["SourceFile"], f["LineNumber"], f["IsPythonCode"])
    return n
