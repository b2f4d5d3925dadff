"""Instrumented trace files (docs/trace-format.md), decoded by the native reader.

`TraceFile(path)` opens one file: `info` (header and integrity counters), `functions`, and
`events()`, which yields `Event`s in timestamp order whose stacks are rebuilt from the push/pop
events, leaf first.
"""

import os

from .. import _bundle
from .._errors import ReadError
from .._schema import STACK_SAMPLE
from .events import Event, Frame, mark_opcode

# Native event kinds (reader/trace_reader.h: reader::Kind).
_PUSH, _POP, _FUNCTION, _MARK, _THREAD_START, _THREAD_STOP, _SAMPLE = 1, 2, 3, 4, 5, 6, 7
# Sample flags (format/trace_format.h: kSample*).
_WALL_CLOCK, _REQUESTED = 0x01, 0x10
_SOURCES = {"task-clock": "task-clock", "timer-cpu-clock": "cpu-clock", "timer-wall-clock": "wall-clock"}
_BATCH = 65536


def _native():
    from .. import _etwtrace

    return _etwtrace


def is_trace_file(path):
    return path.endswith(_bundle.TRACE_SUFFIX)


def trace_files(directory):
    """The trace files in a directory, by name."""
    return sorted(os.path.join(directory, name) for name in os.listdir(directory) if is_trace_file(name))


class TraceFile:
    """One decoded trace file: ``info`` (header and integrity counters), ``functions``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        native = _native()
        self._native = native
        try:
            self._trace = native._read_trace(self.path)
        except (OSError, ValueError) as ex:
            raise ReadError(str(ex)) from None
        self.info = native._trace_info(self._trace)
        self.info["python_version"] = native._trace_python_version(self._trace)
        self.pid = self.info["pid"]
        self._function_list = native._trace_functions(self._trace)
        self.functions = {f[0]: f for f in self._function_list}
        self._function_events = {}
        self._stack_cache = {}
        self.sampler = native._trace_sampler_stats(self._trace)
        self._symbols = {s[0]: s for s in native._trace_symbols(self._trace)} if self.sampler is not None else {}
        self._sample_frames = {}
        self._sample_stacks = {}

    @property
    def lost_events(self):
        return self.info["lost_events"]

    def function_event(self, function_id):
        """The PythonFunction event of a FunctionID (one shared object per function)."""
        event = self._function_events.get(function_id)
        if event is None:
            f = self.functions.get(function_id)
            if f is None:
                fields = _function_fields(function_id, f"<unknown function {function_id}>", "", 0, False, 0, 0)
            else:
                fields = _function_fields(*f)
            event = self._function_events[function_id] = Event("PythonFunction", self.pid, 0, 0, fields)
        return event

    def frame(self, function_id):
        function = self.function_event(function_id)
        return Frame(function["BeginAddress"], function=function)

    def stack(self, node):
        frames = self._stack_cache.get(node)
        if frames is None:
            frames = tuple(self.frame(i) for i in self._native._trace_stack(self._trace, node))
            if len(self._stack_cache) < 100000:
                self._stack_cache[node] = frames
        return frames

    def sample_frame(self, is_native, ident, line):
        """The Frame of one sampled frame: a Python function at a line, or a native symbol."""
        key = (is_native, ident, line)
        frame = self._sample_frames.get(key)
        if frame is None:
            if is_native:
                _id, kernel, address, module, symbol = self._symbols.get(ident, (ident, False, 0, "", ""))
                frame = Frame(address, symbol or None, module or ("[kernel.kallsyms]" if kernel else None))
            else:
                function = self.function_event(ident)
                frame = Frame(function["BeginAddress"], function=function, line=line)
            self._sample_frames[key] = frame
        return frame

    def sample_stack(self, node):
        """The frames of a sample, leaf first (shared tuples: stacks repeat)."""
        frames = self._sample_stacks.get(node)
        if frames is None:
            frames = tuple(self.sample_frame(*f) for f in self._native._trace_sample_stack(self._trace, node))
            if len(self._sample_stacks) < 100000:
                self._sample_stacks[node] = frames
        return frames

    def events(self, thread_ids=None, names=None):
        """Events of this file in timestamp order, optionally only of these threads / names."""
        pid = self.pid
        total = self.info["events"]
        functions = self._function_list
        requested = {}
        stats = self.sampler or {}
        period = stats.get("period_ns", 0)
        clock_event = _SOURCES.get(stats.get("source"), "task-clock")
        for start in range(0, total, _BATCH):
            for kind, ts, tid, fid, caller, caller_line, mark_kind, detail, node in self._native._trace_events(
                self._trace, start, _BATCH
            ):
                if thread_ids is not None and tid not in thread_ids:
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
                    fields = _function_fields(*functions[detail])
                elif kind == _SAMPLE:
                    if mark_kind & _REQUESTED:
                        requested[tid] = node  # the stack of the PythonStackSample that follows
                        continue
                    if names is not None and "SampledProfile" not in names:
                        continue
                    event = Event("SampledProfile", pid, tid, ts, {
                        "Event": "wall-clock" if mark_kind & _WALL_CLOCK else clock_event,
                        "Period": period}, (), "Info")
                    if node is not None:
                        event._stack_source = _SampleStacks(self)
                        event._stack_node = node
                    yield event
                    continue
                elif kind == _MARK:
                    name = "PythonStackSample" if mark_kind == STACK_SAMPLE else "PythonMark"
                    opcode = mark_opcode(mark_kind)
                    fields = {"Mark": detail}
                    if mark_kind == STACK_SAMPLE and self.sampler is not None:
                        if names is not None and name not in names:
                            continue
                        event = Event(name, pid, tid, ts, fields, (), opcode)
                        sampled = requested.pop(tid, None)
                        if sampled is not None:
                            event._stack_source = _SampleStacks(self)
                            event._stack_node = sampled
                        yield event
                        continue
                elif kind in (_THREAD_START, _THREAD_STOP):
                    name = "PythonThread"
                    opcode = "Start" if kind == _THREAD_START else "Stop"
                    fields = {"ThreadId": tid}
                else:
                    continue
                if names is not None and name not in names:
                    continue
                yield Event.with_lazy_stack(name, pid, tid, ts, fields, opcode, self, node)


class _SampleStacks:
    """Event.stack's lazy source for samples: their nodes are the sampler's prefix tree."""

    __slots__ = ("trace",)

    def __init__(self, trace):
        self.trace = trace

    def stack(self, node):
        return self.trace.sample_stack(node)


def _function_fields(function_id, name, source_file, line, is_python, begin, end):
    return {
        "FunctionID": function_id,
        "BeginAddress": begin,
        "EndAddress": end,
        "LineNumber": line,
        "SourceFile": source_file,
        "Name": name,
        "IsPythonCode": bool(is_python),
    }
