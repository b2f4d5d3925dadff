"""Reading a capture bundle (see _bundle.py and docs/capture.md): its events, in time order.

Sources, merged and sorted by timestamp (CLOCK_MONOTONIC ns everywhere):

* perf's events (perf_data.py): events.jsonl.gz, symbolized once at the end of the capture, or
  perf.data through `perf script` (or perf.raw of a capture whose supervisor was killed): the
  USDT probes' Python events, CPU samples (SampledProfile) and context switches (CSwitch), with
  DWARF-unwound native stacks;
* jit/jit-<pid>.dump (jitdump.py): in stack mode, the PythonFunction events of every thunk a
  process made, which win over the `function` probe (perf's uprobes reach a process only some
  time after it starts);
* traces/*: instrumented trace files (trace_file.py), streamed, never held in memory; for a
  process that has one, its Python events come from the file (lossless), not from the probes,
  and its perf samples get the Python stack of their instant as `python_stack` (one native
  pass over the file).

A native frame inside a thunk gets that thunk's PythonFunction event as `.function`.
Whatever was lost is said through `warn` (read() makes it a RuntimeWarning): an unfinished
capture, chunks of events or samples perf lost (manifest["perf"]["lost_chunks"], ...), an
events file cut short.
"""

import bisect
import heapq
import json
import os
import warnings

from .. import _bundle
from .._errors import ReadError
from .._schema import CSWITCH, PYTHON_EVENTS, SAMPLED_PROFILE
from .jitdump import read_jitdump
from .perf_data import read_perf_data, stream_perf_events
from .trace_file import TraceFile, trace_files


def _open_trace_files(bundle, warn):
    """The bundle's instrumented trace files, indexed (their events are streamed later)."""
    directory = bundle.traces_dir
    if not os.path.isdir(directory):
        return []
    traces = []
    for path in trace_files(directory):
        trace = TraceFile(path)
        warn(trace)
        traces.append(trace)
    return traces


class _FunctionIndex:
    """Per-process address ranges of PythonFunction events, for naming stack frames."""

    def __init__(self, functions):
        self._by_pid = {}
        for event in functions:
            begin, end = event.get("BeginAddress") or 0, event.get("EndAddress") or 0
            if begin and end > begin:
                self._by_pid.setdefault(event.pid, []).append((begin, end, event))
        self._starts = {}
        for pid, ranges in self._by_pid.items():
            ranges.sort(key=lambda r: r[0])
            self._starts[pid] = [r[0] for r in ranges]

    def lookup(self, pid, address):
        starts = self._starts.get(pid)
        if not starts:
            return None
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0:
            begin, end, event = self._by_pid[pid][i]
            if begin <= address <= end:
                return event
        return None


class _GrowingFunctionIndex(_FunctionIndex):
    """A _FunctionIndex that takes PythonFunction events as a stream brings them (the probe's,
    for a process without a jitdump); generation(pid) changes with each, so that a stack
    named before it is named again after."""

    def __init__(self, functions):
        super().__init__(functions)
        self._generations = {}

    def generation(self, pid):
        return self._generations.get(pid, 0)

    def add(self, event):
        begin, end = event.get("BeginAddress") or 0, event.get("EndAddress") or 0
        if not (begin and end > begin):
            return
        ranges = self._by_pid.setdefault(event.pid, [])
        starts = self._starts.setdefault(event.pid, [])
        i = bisect.bisect_right(starts, begin)
        starts.insert(i, begin)
        ranges.insert(i, (begin, end, event))
        self._generations[event.pid] = self.generation(event.pid) + 1


def _attach_python_stacks(perf_events, traces):
    """Give perf's samples in instrumented processes the Python stack of that instant: the
    stack of their thread in the trace file just before the sample (a native pass over it)."""
    for trace in traces:
        samples = [e for e in perf_events if e.pid == trace.pid and e.name in (SAMPLED_PROFILE, CSWITCH)]
        if not samples:
            continue
        stacks = trace.stacks_at([(e.thread_id, e.timestamp) for e in samples])
        for event, stack in zip(samples, stacks):
            # A process with two trace files (tracing enabled twice): the one that knows a stack wins.
            if stack or event.python_stack is None:
                event.python_stack = list(stack)


def _warn(message):
    warnings.warn(message, RuntimeWarning, stacklevel=5)


def _count(path, perf, key):
    value = perf.get(key) or 0
    if type(value) is not int or value < 0:
        raise ReadError(f"{path} is a damaged etwtrace capture ({_bundle.MANIFEST}: perf.{key} is "
                        f"{json.dumps(value)[:40]}, not a count)")
    return value


def _lost_message(path, perf):
    """What perf lost while recording, in words, or None."""
    chunks = _count(path, perf, "lost_chunks")
    samples = _count(path, perf, "lost_samples")
    if not chunks and not samples:
        return None
    parts = []
    if chunks:
        parts.append(f"{chunks:,} chunks of events (its buffer was full)")
    if samples:
        total = samples + _count(path, perf, "samples")
        parts.append(f"{samples:,} samples" + (f" of {total:,} ({100 * samples / total:.1f}%)" if total else ""))
    return (f"{path}: perf lost {' and '.join(parts)} while recording: the events read are incomplete "
            "(record with a bigger buffer, e.g. mmap_pages in the profile, or a lower frequency)")


def _capture_warnings(bundle, manifest, warn):
    """Say what the capture lacks: an unfinished capture, perf's losses."""
    perf = manifest.get("perf") or {}
    if not isinstance(perf, dict):
        raise ReadError(f"{bundle.path} is a damaged etwtrace capture ({_bundle.MANIFEST}: \"perf\" is not an object)")
    if not manifest.get("complete"):
        what = ("the launcher ended before finishing it; what perf recorded is read from "
                f"{_bundle.PERF_RAW}" if perf and not os.path.exists(bundle.events)
                and not os.path.exists(bundle.perf_data) else "the recording was interrupted")
        warn(f"{bundle.path} is an incomplete capture ({what})")
        if perf and "lost_chunks" not in perf and os.path.exists(bundle.perf_raw):
            from .perf_data import perf_stats

            perf = dict(perf, **(perf_stats(bundle.perf_raw) or {}))
    lost = _lost_message(bundle.path, perf)
    if lost:
        warn(lost)


def _jitdump_events(bundle, skip_pids=(), warn=_warn):
    jitted = []
    jit_dir = bundle.jit_dir
    if os.path.isdir(jit_dir):
        for name in sorted(os.listdir(jit_dir)):
            if name.startswith("jit-") and name.endswith(".dump"):
                jitted.extend(e for e in read_jitdump(os.path.join(jit_dir, name), warn) if e.pid not in skip_pids)
    return jitted


def stream_capture(path, manifest, names, warn=_warn):
    """perf's events of the capture at PATH (whose manifest was loaded) one at a time, in time
    order, as read_capture would give those of `names`, keeping nothing per event: the report's
    pass over a big capture. Frames are named from the jitdumps (`frame_tuples()`), as in
    read_capture. None when the capture needs read_capture: it has instrumented trace files
    (their Python stacks need every event), or only an unfinished perf.raw."""
    bundle = _bundle.Bundle(path)
    if not manifest.get("perf") or not manifest.get("complete"):
        return None
    if os.path.isdir(bundle.traces_dir) and trace_files(bundle.traces_dir):
        return None
    _capture_warnings(bundle, manifest, warn)
    jitted = _jitdump_events(bundle, warn=warn)
    jit_pids = {e.pid for e in jitted}
    index = _GrowingFunctionIndex(jitted)
    wanted = set(names) | {"PythonFunction"} if names is not None else None
    events = stream_perf_events(bundle.path, index, wanted, warn)
    if events is None:
        return None
    return _named(events, index, jit_pids, names)


def _named(events, index, jit_pids, names):
    for event in events:
        if event.name == "PythonFunction":
            if event.pid in jit_pids:
                continue  # the jitdump's events win (read_capture's rule)
            index.add(event)
            if names is not None and "PythonFunction" not in names:
                continue
        yield event


def read_capture(path, manifest, warn_trace, warn=_warn, names=None):
    """The events of the capture at PATH (whose manifest was loaded), in timestamp order.

    perf's events are in memory (perf_data.py), the trace files' are streamed: `names`, if
    given, are the only event names the caller keeps, so the trace files skip the others
    before making them (the caller filters perf's)."""
    bundle = _bundle.Bundle(path)
    _capture_warnings(bundle, manifest, warn)

    perf_events = read_perf_data(bundle.path, warn) if manifest.get("perf") else []
    traces = _open_trace_files(bundle, warn_trace)
    traced_pids = {t.pid for t in traces if t.info["events"]}
    traces = [t for t in traces if t.info["events"]]
    # Processes with a trace file: their Python events come from it (lossless).
    perf_events = [e for e in perf_events if not (e.name in PYTHON_EVENTS and e.pid in traced_pids)]

    jitted = _jitdump_events(bundle, traced_pids, warn)
    if jitted:
        jit_pids = {e.pid for e in jitted}
        perf_events = [e for e in perf_events if not (e.name == "PythonFunction" and e.pid in jit_pids)]
        jitted.sort(key=_timestamp)

    perf_events.sort(key=_timestamp)
    functions = [e for e in perf_events if e.name == "PythonFunction"] + jitted
    for trace in traces:
        functions.extend(trace.function_event(fid) for fid in trace.functions)
    index = _FunctionIndex(functions)
    # perf_data shares Frames between the events of a process: name each frame once.
    seen = set()
    for event in perf_events:
        for frame in event.stack:
            key = id(frame)
            if key not in seen:
                seen.add(key)
                if frame.function is None:
                    frame.function = index.lookup(event.pid, int(frame))

    if traces:
        _attach_python_stacks(perf_events, traces)
    # Ties in time: perf's events, then each trace file's, then the jitdumps' (as one sort of
    # them all in that order would put them).
    streams = [perf_events, *(t.events(names=names) for t in traces), jitted]
    return heapq.merge(*streams, key=_timestamp)


def _timestamp(event):
    return event.timestamp
