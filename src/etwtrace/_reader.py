"""Reading traces back: ``etwtrace.read(path)`` yields upstream-named events.

A *source* is one trace file written by instrumented mode (docs/trace-format.md), decoded by
the native reader. ``read()`` accepts a trace file or a directory; for a directory it reads
every ``*.etwtrace`` file in it (one per process) and asks the handlers registered with
:func:`register_directory_source` for more (a perf capture bundle adds its own events that
way), then merges everything in timestamp order (CLOCK_MONOTONIC nanoseconds).

Each :class:`Event` has ``name`` (PythonFunction, PythonFunctionPush, PythonFunctionPop,
PythonThread, PythonMark, PythonStackSample), ``pid``, ``thread_id`` (the kernel thread id, as
perf reports it), ``timestamp``, ``opcode`` ("Info", "Start", "Stop"), upstream field names as
items (``e["FunctionID"]``) and ``stack``: the call stack at that event rebuilt from the
push/pop events, leaf first, as :class:`StackFrame` tuples.
"""

import heapq
import os
import warnings
from typing import NamedTuple

__all__ = ["read", "Event", "StackFrame", "TraceFile", "register_directory_source"]

TRACE_SUFFIX = ".etwtrace"

# Native event kinds (reader/trace_reader.h: reader::Kind).
_PUSH, _POP, _FUNCTION, _MARK, _THREAD_START, _THREAD_STOP = 1, 2, 3, 4, 5, 6
_MARK_OPCODES = ("Info", "Start", "Stop", "Info")
_BATCH = 65536


class StackFrame(NamedTuple):
    name: str
    source_file: str
    line: int
    function_id: int
    is_python: bool


class Event:
    """One decoded event. Fields are items: ``e["FunctionID"]``, ``e.get("Mark")``."""

    __slots__ = ("name", "pid", "thread_id", "timestamp", "opcode", "_fields", "_stack_source", "_stack_node")

    def __init__(self, name, pid, thread_id, timestamp, fields, opcode="Info", stack_source=None, stack_node=None):
        self.name = name
        self.pid = pid
        self.thread_id = thread_id
        self.timestamp = timestamp
        self.opcode = opcode
        self._fields = fields
        self._stack_source = stack_source
        self._stack_node = stack_node

    def __getitem__(self, key):
        return self._fields[key]

    def __contains__(self, key):
        return key in self._fields

    def get(self, key, default=None):
        return self._fields.get(key, default)

    def keys(self):
        return self._fields.keys()

    def items(self):
        return self._fields.items()

    @property
    def fields(self):
        return dict(self._fields)

    @property
    def stack(self):
        """The call stack at this event, leaf first (empty when unknown)."""
        if self._stack_source is None or self._stack_node is None:
            return ()
        return self._stack_source.stack(self._stack_node)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"<{self.name} pid={self.pid} tid={self.thread_id} t={self.timestamp} {fields}>"


def _native():
    from . import _etwtrace

    return _etwtrace


class TraceFile:
    """One decoded trace file: ``info`` (header and integrity counters), ``functions``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        native = _native()
        self._native = native
        self._trace = native._read_trace(self.path)
        self.info = native._trace_info(self._trace)
        self.info["python_version"] = native._trace_python_version(self._trace)
        self.pid = self.info["pid"]
        self._function_list = native._trace_functions(self._trace)
        self.functions = {f[0]: f for f in self._function_list}
        self._stack_cache = {}

    @property
    def lost_events(self):
        return self.info["lost_events"]

    def frame(self, function_id):
        f = self.functions.get(function_id)
        if f is None:
            return StackFrame(f"<unknown function {function_id}>", "", 0, function_id, False)
        fid, name, source_file, line, is_python, _begin, _end = f
        return StackFrame(name, source_file, line, fid, is_python)

    def stack(self, node):
        frames = self._stack_cache.get(node)
        if frames is None:
            frames = tuple(self.frame(i) for i in self._native._trace_stack(self._trace, node))
            if len(self._stack_cache) < 100000:
                self._stack_cache[node] = frames
        return frames

    def events(self, thread_id=None, names=None):
        """Events of this file in timestamp order, optionally filtered."""
        pid = self.pid
        total = self.info["events"]
        functions = self._function_list
        for start in range(0, total, _BATCH):
            for kind, ts, tid, fid, caller, caller_line, mark_kind, detail, node in self._native._trace_events(
                self._trace, start, _BATCH
            ):
                if thread_id is not None and tid != thread_id:
                    continue
                opcode = "Info"
                if kind == _PUSH:
                    name = "PythonFunctionPush"
                    fields = {"FunctionID": fid, "Caller": caller, "CallerLine": caller_line}
                elif kind == _POP:
                    name = "PythonFunctionPop"
                    fields = {"FunctionID": fid}
                elif kind == _FUNCTION:
                    name = "PythonFunction"
                    _id, fname, source_file, line, is_python, begin, end = functions[detail]
                    fields = {
                        "FunctionID": fid,
                        "BeginAddress": begin,
                        "EndAddress": end,
                        "LineNumber": line,
                        "SourceFile": source_file,
                        "Name": fname,
                        "IsPythonCode": is_python,
                    }
                elif kind == _MARK:
                    name = "PythonStackSample" if mark_kind == 3 else "PythonMark"
                    opcode = _MARK_OPCODES[mark_kind]
                    fields = {"Mark": detail}
                elif kind in (_THREAD_START, _THREAD_STOP):
                    name = "PythonThread"
                    opcode = "Start" if kind == _THREAD_START else "Stop"
                    fields = {"ThreadId": tid}
                else:
                    continue
                if names is not None and name not in names:
                    continue
                yield Event(name, pid, tid, ts, fields, opcode, self, node)


# Handlers for directories that hold more than trace files (e.g. a perf capture bundle):
# each is called as handler(directory, pid=..., thread_id=..., names=...) and returns a list
# of iterables of Event, each already in timestamp order.
_directory_sources = []


def register_directory_source(handler):
    """Adds a handler that contributes event streams when read() is given a directory."""
    if handler not in _directory_sources:
        _directory_sources.append(handler)
    return handler


def _trace_files(directory):
    return sorted(
        os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(TRACE_SUFFIX)
    )


def _warn_integrity(trace):
    info = trace.info
    if info["lost_events"]:
        warnings.warn(f"{trace.path}: {info['lost_events']} events were lost while tracing", RuntimeWarning, stacklevel=3)
    if info["error"]:
        warnings.warn(f"{trace.path}: damaged trace ({info['error']}); events before it were read", RuntimeWarning, stacklevel=3)


def read(path, pid=None, thread_id=None, names=None):
    """Yields the events of a trace file (or of every trace in a directory) in timestamp order.

    pid, thread_id: keep only events of that process / kernel thread id.
    names: keep only events with these names (e.g. {"PythonFunctionPush", "PythonFunctionPop"}).
    A file cut short (a process killed with SIGKILL) is read up to its last complete record;
    lost events, if any were ever counted, are reported with a RuntimeWarning.
    """
    path = os.fspath(path)
    if isinstance(names, str):
        names = {names}
    elif names is not None:
        names = set(names)
    streams = []
    if os.path.isdir(path):
        files = _trace_files(path)
        for handler in _directory_sources:
            streams.extend(handler(path, pid=pid, thread_id=thread_id, names=names))
    else:
        files = [path]
    for file in files:
        trace = TraceFile(file)
        if pid is not None and trace.pid != pid:
            continue
        _warn_integrity(trace)
        streams.append(trace.events(thread_id=thread_id, names=names))
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from heapq.merge(*streams, key=lambda e: e.timestamp)


# Capture bundles written by `python -m etwtrace --capture PATH` (issue #4): perf.data, jitdumps
# and trace files, decoded by etwtrace._perfdata (imported only when a directory is read).
def _capture_bundle_source(directory, pid=None, thread_id=None, names=None):
    from ._perfdata import capture_streams

    return capture_streams(directory, pid=pid, thread_id=thread_id, names=names)


register_directory_source(_capture_bundle_source)
