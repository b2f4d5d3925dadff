"""Building the report's Profile from a capture bundle, a trace file or a directory of traces.

One pass over the events (`etwtrace.read`), keeping no event: every frame and every stack is
interned into the Profile once, so memory grows with the number of distinct stacks, not with
the length of the recording.

Frames. A Python frame is FrameKey(PYTHON, qualname, source file, first line): in stack mode
the thunk frames (`py::<qualname>:<file>` symbols, named from their PythonFunction event); in
instrumented traces the trace's own calls. A C function recorded by an instrumented trace
(`zlib.compress`, `exec`) is FrameKey(NATIVE, name, module name). Other frames are NATIVE
with their shared object, or KERNEL (module `[kernel.kallsyms]`, or an address in the upper
half); a native frame without a symbol is named `[<module file name>]` (runs of them merge
into one) or by its address when even the module is unknown, and counted in
health.unresolved_frames (once per distinct address).

Instrumented processes (the merge rule). perf's samples carry a native stack in which Python
functions are only `_PyEval_EvalFrameDefault`, and the trace file gives the Python stack of
that instant (`event.python_stack`). The merged stack, root first, is: the native frames
rootward of the outermost eval-loop frame (process or thread start-up), then the trace's
Python stack, then the native frames leafward of the innermost eval-loop frame (the C
extension, libc and kernel code running at the sample). The native frames between the outermost and
innermost eval loops are dropped: they are the interpreter's call glue, and the C functions
among them are in the trace's stack themselves. The trace's innermost C-function entries are
dropped when native frames follow them, which show the same call in more detail. A sample
with no eval-loop frame (its unwind stopped early) gets the Python stack rootward of all its
native frames; a sample of a traced thread with an eval loop but no Python stack counts in
health.unmerged_samples.

Short stacks: a sample whose outermost native frame is not where threads begin
(THREAD_ROOTS: `_start`, `__libc_start_main`, `clone`, `clone3`, `start_thread`, ...) was cut
short by the unwinder (too little stack copied, or missing unwind information); it is counted
in health.short_stacks and kept as it is.

Off-CPU time (sched:sched_switch): perf records the switch-out of our threads (with the stack
where they blocked, or were preempted) but, per task, not their switch-in; a thread is back on
the CPU at the first later event it produces (a sample, a probe, another switch-out), or when
another of our threads switches to it, whichever comes first. A thread that never runs again
adds nothing.
"""

import os
import re

from . import ReportError
from .profile import KERNEL, NATIVE, PYTHON, TAG, FrameKey, FunctionStats, Mark, Profile, Sample, Slice
from .stacktags import StackTags, fold

# --- the reading side of the package, imported here only -------------------------------------
# (the package is moving these modules; this is the one place that names them)


def _trace_file_class():
    try:
        from .._read.trace_file import TraceFile
    except ImportError:
        from .._reader import TraceFile
    return TraceFile


def _load_manifest(path):
    """The manifest dict of a capture directory, None if it is not one; ReportError if bad."""
    try:
        from .._bundle import load_manifest
    except ImportError:
        load_manifest = None
    try:
        if load_manifest is not None:
            return load_manifest(path)
        import json

        manifest_path = os.path.join(path, "manifest.json")
        if not os.path.exists(manifest_path):
            return None
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or manifest.get("format") != "etwtrace-capture":
            raise ValueError("it is not an etwtrace capture manifest")
        return manifest
    except (ValueError, OSError) as ex:
        raise ReportError(f"the capture {path} has an unusable manifest.json ({ex}); "
                          f"capture again with python -m etwtrace --capture") from None


def _read_errors():
    """The exception classes the readers raise for an unreadable input."""
    classes = []
    for module, name in (("etwtrace._errors", "ReadError"), ("etwtrace._read.capture", "CaptureReadError"),
                         ("etwtrace._perfdata", "CaptureReadError")):
        try:
            classes.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


def _read_events(path, names):
    import etwtrace

    return etwtrace.read(path, names=names)


# ---------------------------------------------------------------------------------------------

KERNEL_START = 0xFFFF800000000000
EVAL_LOOP = frozenset({"_PyEval_EvalFrameDefault", "_PyEval_EvalFrame", "PyEval_EvalFrameEx",
                       "PyEval_EvalFrame"})
THREAD_ROOTS = frozenset({"_start", "__libc_start_main", "__libc_start_call_main", "clone", "clone3",
                          "__clone", "__clone3", "__GI___clone", "__GI___clone3", "start_thread",
                          "thread_start", "ret_from_fork", "ret_from_fork_asm"})
CPU_CLOCKS = ("cpu-clock", "task-clock")
LOST_CHUNKS = re.compile(r"lost (\d[\d,]*) chunks")


class Filters:
    """What to keep: processes, threads, a time window, Python files."""

    def __init__(self, pids=(), tids=(), from_mark=None, to_mark=None, range_text=None,
                 include=(), exclude=()):
        self.pids = set(pids or ())
        self.tids = set(tids or ())
        self.from_mark = from_mark
        self.to_mark = to_mark
        self.range_text = range_text
        self.include = tuple(include or ())
        self.exclude = tuple(exclude or ())

    @property
    def windowed(self):
        return bool(self.from_mark or self.to_mark or self.range_text)

    def thread(self, pid, tid):
        return (not self.pids or pid in self.pids) and (not self.tids or tid in self.tids)

    def files(self, files):
        """Whether a stack whose Python frames come from `files` is kept."""
        if self.include and not any(f.startswith(self.include) for f in files):
            return False
        return not (self.exclude and any(f.startswith(self.exclude) for f in files))


class _Window:
    """Which instants are kept, decided as the marks stream by (they come in time order)."""

    def __init__(self, filters):
        self.filters = filters
        self.spans = []  # (start, end) kept; end None while open
        self._depth = 0
        self.open = not filters.windowed or (filters.to_mark is not None and filters.from_mark is None
                                             and not filters.range_text)
        if self.open:
            self.spans.append((0, None))

    def mark(self, text, opcode, ts):
        f = self.filters
        if f.range_text is not None:
            if text != f.range_text:
                return
            if opcode == "Start":
                self._depth += 1
                if self._depth == 1:
                    self._set(True, ts)
            elif opcode == "Stop" and self._depth:
                self._depth -= 1
                if not self._depth:
                    self._set(False, ts)
            return
        if not self.open and f.from_mark is not None and text == f.from_mark and not self.spans:
            self._set(True, ts)
        elif self.open and f.to_mark is not None and text == f.to_mark:
            self._set(False, ts)

    def _set(self, open_, ts):
        if open_ and not self.open:
            self.spans.append((ts, None))
        elif not open_ and self.open:
            self.spans[-1] = (self.spans[-1][0], ts)
        self.open = open_

    def check(self, filters_text):
        """ReportError when a mark the filters name never appeared."""
        f = self.filters
        if f.windowed and not self.spans:
            name = f.range_text if f.range_text is not None else f.from_mark
            raise ReportError(f"no mark {name!r} in {filters_text}; list the marks with the summary format")

    def closed_spans(self, end):
        return [(s, e if e is not None else end) for s, e in self.spans]


def _strip_version(symbol):
    """`__libc_start_main@@GLIBC_2.34` -> `__libc_start_main` (symbol versions are noise here)."""
    return symbol.split("@", 1)[0] if symbol and "@" in symbol[1:] else symbol


class _Builder:
    def __init__(self, profile, tags, filters, timeline):
        self.p = profile
        self.tags = tags  # None: --raw
        self.filters = filters
        self.timeline = timeline
        self._raw_frames = {}  # perf frame identity -> (frame number, symbol, is eval loop)
        self._unresolved = set()
        self._frame_tags = []  # frame number -> tag (None untagged)
        self._folded = {}  # tuple of frame numbers (root first) -> stack number
        self._kept_stack = {}  # stack number -> passes the file filters
        self.trace_starts = {}  # pid -> when its instrumented trace began

    # -- frames -------------------------------------------------------------------------------

    def frame_number(self, key):
        number = self.p.frame(key)
        while len(self._frame_tags) <= number:
            self._frame_tags.append(self._tag_of(self.p.frames[len(self._frame_tags)]))
        return number

    def _tag_of(self, key):
        if self.tags is None or key.kind == TAG:
            return None
        if key.kind == PYTHON:
            return self.tags.tag(key.file, f"py::{key.name}:{key.file}")
        if key.name.startswith("[") or key.name.startswith("0x"):
            return self.tags.tag(key.name.strip("[]") if key.name.startswith("[") else "", None)
        return self.tags.tag(os.path.basename(key.file), key.name)

    def perf_frame(self, frame):
        """(frame number, symbol, in the eval loop) of one perf stack frame."""
        function = getattr(frame, "function", None)
        address = int(frame)
        symbol = getattr(frame, "symbol", None)
        module = getattr(frame, "module", None)
        identity = (address, symbol, module, function)
        known = self._raw_frames.get(identity)
        if known is not None:
            return known
        symbol = _strip_version(symbol)
        if symbol == "[unknown]":
            symbol = None
        if function is not None:
            key = FrameKey(PYTHON, function["Name"], function["SourceFile"] or "", function["LineNumber"] or 0)
        elif symbol and symbol.startswith("py::"):
            qualname, _, source = symbol[4:].partition(":")
            key = FrameKey(PYTHON, qualname, source, 0)
        elif module == "[kernel.kallsyms]" or (module or "").startswith("[kernel") or address >= KERNEL_START:
            key = FrameKey(KERNEL, symbol or f"{address:#x}", module or "[kernel.kallsyms]")
        elif symbol:
            key = FrameKey(NATIVE, symbol, module or "")
        else:
            if (module, address) not in self._unresolved:
                self._unresolved.add((module, address))
                self.p.health.unresolved_frames += 1
            key = FrameKey(NATIVE, f"[{os.path.basename(module)}]" if module else f"{address:#x}", "")
        known = self._raw_frames[identity] = (self.frame_number(key), symbol, symbol in EVAL_LOOP)
        return known

    def trace_frame(self, name, source_file, line, is_python):
        if is_python:
            return self.frame_number(FrameKey(PYTHON, name, source_file or "", line or 0))
        return self.frame_number(FrameKey(NATIVE, name, source_file or ""))

    # -- stacks -------------------------------------------------------------------------------

    def stack_number(self, root_first):
        """The Profile stack of frames (root first) after folding; None if filtered out."""
        root_first = tuple(root_first)
        number = self._folded.get(root_first)
        if number is None:
            frames = root_first
            if self.tags is not None:
                tags = [self._frame_tags[i] for i in frames]
                python = [self.p.frames[i].kind == PYTHON for i in frames]
                frames = fold(frames, tags, python, self._tag_frame)
            number = self._folded[root_first] = self.p.stack(frames)
        kept = self._kept_stack.get(number)
        if kept is None:
            files = [self.p.frames[i].file for i in self.p.stacks[number] if self.p.frames[i].kind == PYTHON]
            kept = self._kept_stack[number] = self.filters.files(files)
        return number if kept else None

    def _tag_frame(self, tag):
        return self.frame_number(FrameKey(TAG, tag))

    def sample_stack(self, event, count_short=False):
        """The merged, folded stack number of a perf event (None: filtered out)."""
        native = []  # leaf first: (frame number, symbol, eval loop)
        previous = None
        stack = event.stack
        outermost = len(stack)
        # Where the unwinder lost its way it adds a frame of no known module: not a frame.
        while outermost and getattr(stack[outermost - 1], "module", None) in ("[unknown]", None) \
                and not getattr(stack[outermost - 1], "symbol", None):
            outermost -= 1
        for i in range(outermost):
            resolved = self.perf_frame(stack[i])
            if resolved[0] == previous and resolved[1] is None:
                continue  # consecutive frames without symbols in one module read as one
            previous = resolved[0]
            native.append(resolved)
        if count_short and native and native[-1][1] not in THREAD_ROOTS:
            self.p.health.short_stacks += 1
        python_stack = getattr(event, "python_stack", None)
        if python_stack is None:
            leaf_first = [n for n, _s, _e in native]
        else:
            leaf_first = self._merge(event, native, python_stack)
        leaf_first.reverse()
        return self.stack_number(leaf_first)

    def _merge(self, event, native, python_stack):
        evals = [i for i, (_n, _s, is_eval) in enumerate(native) if is_eval]
        python = []
        for frame in python_stack:
            function = getattr(frame, "function", None)
            if function is not None:
                python.append((self.trace_frame(function["Name"], function["SourceFile"], function["LineNumber"],
                                                function.get("IsPythonCode", 1)), bool(function.get("IsPythonCode", 1))))
            else:
                python.append((self.trace_frame(frame.name, frame.source_file, frame.line, frame.is_python),
                               frame.is_python))
        if not python:
            if evals and event.timestamp >= self.trace_starts.get(event.pid, 1 << 63):
                self.p.health.unmerged_samples += 1
            return [n for n, _s, _e in native]
        if not evals:
            return [n for n, _s, _e in native] + [n for n, _py in python]
        leaf = [n for n, _s, _e in native[:evals[0]]]
        root = [n for n, _s, _e in native[evals[-1] + 1:]]
        if leaf:
            while python and not python[0][1]:
                python.pop(0)
        return leaf + [n for n, _py in python] + root


def _resolve_source(path):
    """('capture', manifest) | ('traces', [files]); ReportError for anything else."""
    if not os.path.exists(path):
        raise ReportError(f"{path} does not exist; give the PATH that python -m etwtrace --capture wrote "
                          f"(or an instrumented trace file)")
    if os.path.isdir(path):
        manifest = _load_manifest(path)
        if manifest is not None:
            return "capture", manifest
        traces = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".etwtrace"))
        if traces:
            return "traces", traces
        raise ReportError(f"{path} is not an etwtrace capture (no manifest.json) and holds no .etwtrace trace files")
    return "traces", [path]


def _open_trace(path):
    try:
        return _trace_file_class()(path)
    except (OSError, ValueError, RuntimeError) as ex:
        raise ReportError(f"{path} is not a readable etwtrace trace file ({ex})") from None


def _lost_chunks(bundle, manifest):
    perf = manifest.get("perf") or {}
    lines = perf.get("warnings")
    if lines is None:
        try:
            with open(os.path.join(bundle, "perf-record.log"), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
    return sum(int(m.group(1).replace(",", "")) for line in lines for m in [LOST_CHUNKS.search(str(line))] if m)


class _NoProgress:
    count = 0
    stage = ""

    def done(self):
        pass


def build_profile(path, options=None, timeline=False, filters=None, progress=None, stacktags=None):
    """The Profile of a capture bundle, a trace file or a directory of trace files.

    options: formats.ReportOptions (raw: no folding) or None; timeline: also fill
    profile.slices and profile.samples; filters: a Filters; progress: an object whose
    `count` is set to the samples read so far (the command line's status line); stacktags: a StackTags (default: the shipped rules).
    Raises ReportError for inputs that cannot be reported.
    """
    path = os.path.abspath(os.fspath(path))
    filters = filters or Filters()
    raw = bool(getattr(options, "raw", False))
    tags = None if raw else (stacktags or StackTags.load())
    kind, detail = _resolve_source(path)
    profile = Profile(source=path)
    builder = _Builder(profile, tags, filters, timeline)
    status = progress or _NoProgress()
    try:
        if kind == "capture":
            manifest = detail
            profile.mode = manifest.get("mode") or "stack"
            profile.health.incomplete_capture = not manifest.get("complete", False)
            profile.health.lost_chunks = _lost_chunks(path, manifest)
            traces_dir = os.path.join(path, "traces")
            traces = sorted(os.path.join(traces_dir, n) for n in os.listdir(traces_dir)
                            if n.endswith(".etwtrace")) if os.path.isdir(traces_dir) else []
            command = manifest.get("command") or []
            if manifest.get("pids") and command:
                profile.processes[manifest["pids"][0]] = " ".join(command)
            from .._bundle import has_perf_events

            has_perf = has_perf_events(path, manifest)
            if not has_perf and profile.mode != "instrumented":
                raise ReportError(f"the capture {path} has no perf events, so nothing to report; capture again "
                                  f"(see perf-record.log in it for why perf failed)")
            if not has_perf:
                profile.health.notes.append("perf did not record this capture: the trace files alone are reported")
        else:
            traces = detail
            profile.mode = "trace"
            has_perf = False
        trace_files = [_open_trace(t) for t in traces]
        builder.trace_starts = {t.info.get("pid"): t.info.get("start_ns") or 0 for t in trace_files}
        window = _Window(filters)
        _stream_events(builder, path if has_perf else None, traces if not has_perf else [], window, status)
        window.check(path)
        end = profile.end_ns
        status.stage = "adding up the trace files"
        for trace in trace_files:
            _add_trace(builder, trace, window.closed_spans(max(end, 1 << 62)) if filters.windowed else None)
    except ReportError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, KeyError) + _read_errors() as ex:
        raise ReportError(f"cannot read {path}: {ex}") from None
    finally:
        status.done()
    profile.marks.sort(key=lambda m: m.start_ns)
    return profile


_STREAMED = frozenset({"SampledProfile", "CSwitch", "PythonMark", "PythonStackSample", "PythonThread"})


def _stream_events(builder, capture, traces, window, status):
    """The one pass over perf's events (and the marks of every source)."""
    p = builder.p
    filters = builder.filters
    switched_out = {}  # tid -> (pid, stack number or None, switch-out time)
    open_ranges = {}  # (pid, tid, text) -> [start times]
    periods = [0, 0]  # sum, count of cpu-clock periods
    sources = [capture] if capture else traces
    for source in sources:
        events = _read_events(source, _STREAMED)
        for e in events:
            ts = e.timestamp
            tid = e.thread_id
            if p.start_ns == 0 or ts < p.start_ns:
                p.start_ns = ts
            if ts > p.end_ns:
                p.end_ns = ts
            name = e.name
            if switched_out:
                back = switched_out.pop(tid, None)
                if back is not None:
                    _add_offcpu(builder, tid, back, ts)
                if name == "CSwitch":
                    back = switched_out.pop(e.get("NewThreadId"), None)
                    if back is not None:
                        _add_offcpu(builder, e.get("NewThreadId"), back, ts)
            if name == "PythonMark":
                text = e.get("Mark") or ""
                window.mark(text, e.opcode, ts)
                if not filters.thread(e.pid, tid):
                    continue
                if e.opcode == "Start":
                    open_ranges.setdefault((e.pid, tid, text), []).append(ts)
                elif e.opcode == "Stop" and open_ranges.get((e.pid, tid, text)):
                    start = open_ranges[(e.pid, tid, text)].pop()
                    p.marks.append(Mark(e.pid, tid, start, ts, text, "range"))
                else:
                    p.marks.append(Mark(e.pid, tid, ts, None, text, "mark"))
                continue
            if name == "PythonThread" or not filters.thread(e.pid, tid):
                continue
            if name == "PythonStackSample":
                stack = builder.sample_stack(e) if e.stack else None
                p.marks.append(Mark(e.pid, tid, ts, None, e.get("Mark") or "", "stack", stack))
                continue
            if not window.open:
                continue
            if name == "SampledProfile":
                p.health.samples += 1
                status.count = p.health.samples
                if e.get("Event") in CPU_CLOCKS and e.get("Period"):
                    periods[0] += e["Period"]
                    periods[1] += 1
                stack = builder.sample_stack(e, count_short=True)
                if stack is None:
                    continue
                p.add("cpu", e.pid, tid, stack)
                if builder.timeline:
                    p.samples.append(Sample(e.pid, tid, ts, stack, "cpu", 1))
            elif name == "CSwitch":
                p.health.context_switches += 1
                if e.get("OldProcessName"):
                    p.threads.setdefault((e.pid, tid), e["OldProcessName"])
                    p.processes.setdefault(e.pid, e["OldProcessName"])
                switched_out[tid] = (e.pid, builder.sample_stack(e), ts)
    for (pid, tid, text), starts in open_ranges.items():
        for start in starts:
            p.marks.append(Mark(pid, tid, start, None, text, "range"))
    if periods[1]:
        p.sample_period_ns = periods[0] // periods[1]


def _add_offcpu(builder, tid, switched, back_ns):
    pid, stack, out_ns = switched
    if stack is None or back_ns <= out_ns:
        return
    builder.p.add("offcpu", pid, tid, stack, back_ns - out_ns)
    if builder.timeline:
        builder.p.samples.append(Sample(pid, tid, out_ns, stack, "offcpu", back_ns - out_ns))


def _add_trace(builder, trace, spans):
    """The exact figures of one instrumented trace file: instrumented, calls, functions."""
    p = builder.p
    filters = builder.filters
    info = trace.info
    if filters.pids and info.get("pid") not in filters.pids:
        return
    p.health.lost_events += int(info.get("lost_events") or 0)
    if info.get("truncated") or info.get("error") or not info.get("complete", True):
        p.health.truncated_traces += 1
    aggregate = _aggregate_trace(trace, spans=spans, tids=filters.tids or None, timeline=builder.timeline)
    pid = aggregate["pid"]
    if aggregate["start_ns"] and (not p.start_ns or aggregate["start_ns"] < p.start_ns):
        p.start_ns = aggregate["start_ns"]
    p.end_ns = max(p.end_ns, aggregate["end_ns"])
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
        if not filters.files([functions[fid][1]] if functions[fid][3] else []) and functions[fid][3]:
            continue
        number = numbers[fid]
        old = p.functions.get(number)
        if old is not None:
            calls, inclusive, exclusive = calls + old.calls, inclusive + old.inclusive_ns, exclusive + old.exclusive_ns
        p.functions[number] = FunctionStats(calls, inclusive, exclusive)
    for tid, start, end, fid, depth in aggregate["slices"]:
        p.slices.append(Slice(pid, tid, start, end, numbers[fid], depth))


def _aggregate_trace(trace, spans=None, tids=None, timeline=False):
    """Self time and calls per call stack, and exact per-function figures, of one trace file.

    The Python implementation of what the native `_trace_aggregate` computes (same result):
    {"pid", "start_ns", "end_ns",
     "functions": {function id: (name, source file, first line, is Python)},
     "stacks": {(tid, (function ids, root first)): (self ns, calls ending with that stack)},
     "function_stats": {function id: (calls, inclusive ns with recursion counted once,
                                      exclusive ns)},
     "slices": [(tid, start, end, function id, depth)] when timeline}.
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
            slices.append((tid, start, ts, fid, len(state[0])))

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
    }
