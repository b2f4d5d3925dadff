"""The figures of an instrumented trace computed event by event in Python: the reference the native
aggregator (reader/trace_aggregate.cpp, _trace_aggregate) is tested against, with and without
a time window."""


def python_aggregate(trace, spans=None, tids=None, timeline=False, slice_limit=1_000_000):
    """Self time and calls per call stack, and exact per-function figures, of one trace file.

    What the native `_trace_aggregate` computes (with spans: clipped to them), plus the
    timeline's slices (at most `slice_limit`):
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
