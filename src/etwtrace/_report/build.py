"""Building the report's Profile from a capture bundle, a trace file or a directory of traces.

One pass over perf's events (`etwtrace.read`), keeping no event: every frame and every stack
is interned into the Profile once (samples.py), so memory grows with the number of distinct
stacks, not with the length of the recording. Instrumented trace files are summarised by the
native aggregator (trace_profile.py): their exact calls and times, and for plain trace files
their marks, without decoding the file into memory.
"""

import os
import re

from .. import _bundle
from .._errors import EtwtraceError, ReportError
from .._read import read
from .._read.capture import stream_capture
from .profile import Mark, Profile, Sample
from .samples import CPU_CLOCKS, SampleBuilder, add_offcpu
from .stacktags import StackTags
from .trace_profile import add_native, add_windowed, collect_slices, marks, native_aggregate

LOST_CHUNKS = re.compile(r"lost (\d[\d,]*) chunks")
_MARKS = frozenset({"PythonMark", "PythonStackSample"})


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


def _resolve_source(path):
    """('capture', manifest) | ('traces', [files]); ReportError for anything else."""
    if not os.path.exists(path):
        raise ReportError(f"{path} does not exist; give the PATH that python -m etwtrace --capture wrote "
                          f"(or an instrumented trace file)")
    if os.path.isdir(path):
        try:
            manifest = _bundle.load_manifest(path)
        except ValueError as ex:
            raise ReportError(f"the capture {path} has an unusable manifest.json ({ex}); "
                              f"capture again with python -m etwtrace --capture") from None
        if manifest is not None:
            return "capture", manifest
        traces = _trace_files(path)
        if traces:
            return "traces", traces
        raise ReportError(f"{path} is not an etwtrace capture (no manifest.json) and holds no .etwtrace trace files")
    return "traces", [path]


def _trace_files(directory):
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(_bundle.TRACE_SUFFIX))


def _lost_chunks(bundle, manifest):
    """Chunks perf lost while recording: the manifest's count (what the capture's closing line
    and read() say), else perf's own "lost N chunks" line in its log (an older capture). Not a
    sum over the manifest's warnings, which say the same loss twice in two wordings."""
    perf = manifest.get("perf") or {}
    counted = perf.get("lost_chunks")
    if type(counted) is int and counted >= 0:
        return counted
    lines = perf.get("warnings")
    if lines is None:
        try:
            with open(os.path.join(bundle, "perf-record.log"), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
    return max((int(m.group(1).replace(",", "")) for line in lines for m in [LOST_CHUNKS.search(str(line))] if m),
               default=0)


class _NoProgress:
    count = 0
    stage = ""

    def done(self):
        pass


def build_profile(path, options=None, timeline=False, filters=None, progress=None, stacktags=None):
    """The Profile of a capture bundle, a trace file or a directory of trace files.

    options: formats.ReportOptions (raw: no folding) or None; timeline: also fill
    profile.slices and profile.samples; filters: a Filters; progress: an object whose
    `stage` and `count` (samples read so far) the command line's status line shows;
    stacktags: a StackTags (default: the shipped rules).
    Raises an _errors.EtwtraceError (ReportError, ReadError) for inputs that cannot be reported.
    """
    path = os.path.abspath(os.fspath(path))
    filters = filters or Filters()
    raw = bool(getattr(options, "raw", False))
    tags = None if raw else (stacktags or StackTags.load())
    kind, detail = _resolve_source(path)
    profile = Profile(source=path)
    builder = SampleBuilder(profile, tags, filters, timeline)
    status = progress or _NoProgress()
    try:
        if kind == "capture":
            manifest = detail
            profile.mode = manifest.get("mode") or "stack"
            profile.health.incomplete_capture = not manifest.get("complete", False)
            profile.health.lost_chunks = _lost_chunks(path, manifest)
            traces = _trace_files(os.path.join(path, _bundle.TRACES_DIR))
            command = manifest.get("command") or []
            if manifest.get("pids") and command:
                profile.processes[manifest["pids"][0]] = " ".join(command)
            has_perf = _bundle.has_perf_events(path, manifest)
            if not has_perf and profile.mode not in ("instrumented", "sampler", "instrumented+sampler"):
                raise ReportError(f"the capture {path} has no perf events, so nothing to report; capture again "
                                  f"(see perf-record.log in it for why perf failed)")
            if not has_perf and profile.mode == "instrumented":
                profile.health.notes.append("perf did not record this capture: the trace files alone are reported")
        else:
            traces = detail
            profile.mode = "trace"
            has_perf = False
        status.stage = "adding up the trace files"
        aggregates = [native_aggregate(t) for t in traces]
        builder.trace_starts = {a["info"]["pid"]: a["info"]["start_ns"] or 0 for a in aggregates}
        window = _Window(filters)
        # The sampler's trace files hold samples: read() streams them as it streams perf's.
        sampled = any(a.get("samples") for a in aggregates)
        if sampled and kind != "capture":
            # Samples alone, or with an instrumented trace of the same run (--instrument --sampler).
            timed = any(a.get("function_totals") for a in aggregates)
            profile.mode = "instrumented+sampler" if timed else "sampler"
        if has_perf or sampled:
            status.stage = "reading perf data" if has_perf else "reading the samples"
            _stream_events(builder, path, window, status, is_capture=kind == "capture")
            if sampled:
                _sampler_health(profile, traces)
        else:
            _trace_marks(builder, window, aggregates)
        window.check(path)
        end = profile.end_ns
        status.stage = "adding up the trace files"
        stack_marks = {}
        spans = window.closed_spans(max(end, 1 << 62)) if filters.windowed else None
        for trace, aggregate in zip(traces, aggregates):
            if spans is not None:
                add_windowed(builder, trace, spans)
            else:
                add_native(builder, aggregate)
            if timeline:
                status.stage = "collecting the timeline"
                stack_marks.update(collect_slices(builder, trace, spans=spans))
        if stack_marks:
            profile.marks = [m._replace(stack=stack_marks.get((m.tid, m.start_ns)))
                             if m.kind == "stack" and m.stack is None else m for m in profile.marks]
    except EtwtraceError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, KeyError) as ex:
        raise ReportError(f"cannot read {path}: {ex}") from None
    finally:
        status.done()
    profile.marks.sort(key=lambda m: m.start_ns)
    return profile


def _sampler_health(profile, traces):
    """The sampler's own counters, as notes: samples lost or partly unresolved are never silent."""
    from .._read import TraceFile

    for path in traces:
        stats = TraceFile(path).sampler
        if not stats:
            continue
        if stats["dropped"]:
            profile.health.notes.append(f"{os.path.basename(path)}: {stats['dropped']} samples were dropped "
                                        "(the sampler's buffer was full)")
        if stats["unresolved_frames"]:
            profile.health.notes.append(f"{os.path.basename(path)}: {stats['unresolved_frames']} Python frames "
                                        "are [freed code object] (their code was freed before resolution)")
        if stats["truncated"]:
            profile.health.notes.append(f"{os.path.basename(path)}: {stats['truncated']} samples were deeper than "
                                        "the sampler keeps; their outermost frames are cut")


def _mark(builder, window, open_ranges, pid, tid, ts, name, opcode, text, event=None):
    """One mark event into the window and profile.marks (event: a stack sample's, for its stack)."""
    p = builder.p
    if name == "PythonMark":
        window.mark(text, opcode, ts)
        if not builder.filters.thread(pid, tid):
            return
        if opcode == "Start":
            open_ranges.setdefault((pid, tid, text), []).append(ts)
        elif opcode == "Stop" and open_ranges.get((pid, tid, text)):
            start = open_ranges[(pid, tid, text)].pop()
            p.marks.append(Mark(pid, tid, start, ts, text, "range"))
        else:
            p.marks.append(Mark(pid, tid, ts, None, text, "mark"))
    elif builder.filters.thread(pid, tid):
        stack = builder.sample_stack(event) if event is not None and event.stack else None
        p.marks.append(Mark(pid, tid, ts, None, text, "stack", stack))


def _close_ranges(p, open_ranges):
    for (pid, tid, text), starts in open_ranges.items():
        for start in starts:
            p.marks.append(Mark(pid, tid, start, None, text, "range"))


def _trace_marks(builder, window, aggregates):
    """The marks and time span of trace files read without perf (from their native aggregates);
    stack marks get their stack only with a timeline (collect_slices reads the events then)."""
    p = builder.p
    for a in aggregates:
        if a["first_ns"] is not None and (not p.start_ns or a["first_ns"] < p.start_ns):
            p.start_ns = a["first_ns"]
        p.end_ns = max(p.end_ns, a["last_ns"] or 0)
    open_ranges = {}
    for ts, pid, tid, name, opcode, text in sorted((m for a in aggregates for m in marks(a)), key=lambda m: m[0]):
        _mark(builder, window, open_ranges, pid, tid, ts, name, opcode, text)
    _close_ranges(p, open_ranges)


_STREAMED = frozenset({"SampledProfile", "CSwitch", "PythonMark", "PythonStackSample", "PythonThread"})


def _stream_events(builder, capture, window, status, is_capture=True):
    """The one pass over perf's events or the sampler's samples (and the marks of every
    source); `capture` is a capture, or (is_capture False) the sampler's trace files."""
    p = builder.p
    filters = builder.filters
    switched_out = {}  # tid -> (pid, stack number or None, switch-out time)
    open_ranges = {}  # (pid, tid, text) -> [start times]
    periods = [0, 0]  # sum, count of cpu-clock periods
    for source in [capture]:
        # A capture without trace files streams its perf events (nothing kept per event);
        # one with them needs read()'s merge of every event.
        events = stream_capture(source, _bundle.load_manifest(source), _STREAMED) if is_capture else None
        if events is None:
            events = read(source, names=_STREAMED)
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
                    add_offcpu(builder, tid, back, ts)
                if name == "CSwitch":
                    back = switched_out.pop(e.get("NewThreadId"), None)
                    if back is not None:
                        add_offcpu(builder, e.get("NewThreadId"), back, ts)
            if name in _MARKS:
                _mark(builder, window, open_ranges, e.pid, tid, ts, name, e.opcode, e.get("Mark") or "",
                      e if name == "PythonStackSample" else None)
                continue
            if name == "PythonThread" or not filters.thread(e.pid, tid):
                continue
            if not window.open:
                continue
            if name == "SampledProfile":
                p.health.samples += 1
                status.count = p.health.samples
                if e.get("Event") in CPU_CLOCKS and e.get("Period"):
                    periods[0] += e["Period"]
                    periods[1] += 1
                stack = builder.sample_stack(e, count_short=e.source == "perf")
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
    _close_ranges(p, open_ranges)
    if periods[1]:
        p.sample_period_ns = periods[0] // periods[1]


