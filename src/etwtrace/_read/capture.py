"""Reading a capture bundle (see _bundle.py and docs/capture.md): its events, in time order.

Sources, merged and sorted by timestamp (CLOCK_MONOTONIC ns everywhere):

* perf's events (perf_data.py): events.jsonl.gz, symbolized once at the end of the capture, or
  perf.data through `perf script` (or perf.raw of a capture whose supervisor was killed): the
  USDT probes' Python events, CPU samples (SampledProfile) and context switches (CSwitch), with
  DWARF-unwound native stacks;
* jit/jit-<pid>.dump (jitdump.py): in stack mode, the PythonFunction events of every thunk a
  process made, which win over the `function` probe (perf's uprobes reach a process only some
  time after it starts);
* traces/*: instrumented trace files (trace_file.py); for a process that has one, its Python
  events come from the file (lossless), not from the probes, and its perf samples get the
  Python stack of their instant as `python_stack`.

A native frame inside a thunk gets that thunk's PythonFunction event as `.function`.
Whatever was lost is said through `warn` (read() makes it a RuntimeWarning): an unfinished
capture, chunks of events or samples perf lost (manifest["perf"]["lost_chunks"], ...), an
events file cut short.
"""

import bisect
import json
import os
import warnings

from .. import _bundle
from .._errors import ReadError
from .._schema import CSWITCH, PYTHON_EVENTS, SAMPLED_PROFILE
from .events import Frame
from .jitdump import read_jitdump
from .perf_data import read_perf_data
from .trace_file import TraceFile, trace_files


def _read_trace_files(bundle, warn):
    """Events of the bundle's instrumented trace files, each file in time order."""
    directory = bundle.traces_dir
    if not os.path.isdir(directory):
        return []
    events = []
    for path in trace_files(directory):
        trace = TraceFile(path)
        warn(trace)
        events.extend(trace.events())
    return events


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


def _attach_python_stacks(events, traced_pids):
    """Give perf's samples in instrumented processes the Python stack of that instant."""
    functions = {}
    stacks = {}
    for event in events:
        if event.pid not in traced_pids:
            continue
        name = event.name
        if name == "PythonFunction":
            functions[(event.pid, event["FunctionID"])] = event
        elif name == "PythonFunctionPush":
            stacks.setdefault(event.thread_id, []).append(event["FunctionID"])
        elif name == "PythonFunctionPop":
            stack = stacks.get(event.thread_id)
            if stack:
                stack.pop()
        elif name in (SAMPLED_PROFILE, CSWITCH):
            event.python_stack = [
                Frame(0, function=functions.get((event.pid, fid)))
                for fid in reversed(stacks.get(event.thread_id, ()))
                if (event.pid, fid) in functions
            ]


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


def read_capture(path, manifest, warn_trace, warn=_warn):
    """The events of the capture at PATH (whose manifest was loaded), in timestamp order."""
    bundle = _bundle.Bundle(path)
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

    perf_events = read_perf_data(bundle.path, warn) if manifest.get("perf") else []
    trace_events = _read_trace_files(bundle, warn_trace)
    traced_pids = {e.pid for e in trace_events}
    # Processes with a trace file: their Python events come from it (lossless).
    events = [e for e in perf_events if not (e.name in PYTHON_EVENTS and e.pid in traced_pids)]
    events.extend(trace_events)

    jitted = []
    jit_dir = bundle.jit_dir
    if os.path.isdir(jit_dir):
        for name in sorted(os.listdir(jit_dir)):
            if name.startswith("jit-") and name.endswith(".dump"):
                jitted.extend(e for e in read_jitdump(os.path.join(jit_dir, name), warn) if e.pid not in traced_pids)
    if jitted:
        jit_pids = {e.pid for e in jitted}
        events = [e for e in events if not (e.name == "PythonFunction" and e.pid in jit_pids)]
        events.extend(jitted)

    events.sort(key=lambda e: e.timestamp)
    index = _FunctionIndex(e for e in events if e.name == "PythonFunction")
    # perf_data shares Frames between the events of a process: name each frame once.
    seen = set()
    for event in perf_events:
        for frame in event.stack:
            key = id(frame)
            if key not in seen:
                seen.add(key)
                if frame.function is None:
                    frame.function = index.lookup(event.pid, int(frame))

    if traced_pids:
        _attach_python_stacks(events, traced_pids)
    return events
