"""Instrumented trace files (docs/trace-format.md), streamed by the native reader.

`TraceFile(path)` indexes one file (instrumented or the sampler's) (one pass in C++, keeping no event): `info` (header and
integrity counters), `functions`; `events()` then streams its `Event`s in timestamp order
(native/reader/trace_stream.h), each stack rebuilt from the push/pop events, leaf first: one
tuple per distinct stack, shared by the events that have it. Memory is bounded by the threads,
functions and distinct stacks, not by the number of events.
"""

import os

from .. import _bundle
from .._errors import ReadError
from .events import Event, Frame


def _native():
    from .. import _etwtrace

    return _etwtrace


def is_trace_file(path):
    return path.endswith(_bundle.TRACE_SUFFIX)


def trace_files(directory):
    """The trace files in a directory, by name."""
    return sorted(os.path.join(directory, name) for name in os.listdir(directory) if is_trace_file(name))


class TraceFile:
    """One indexed trace file: ``info`` (header and integrity counters), ``functions``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self._reader = _native().TraceReader(self.path)
        except (OSError, ValueError) as ex:
            raise ReadError(str(ex)) from None
        self.info = self._reader.info()
        self.info["python_version"] = self._reader.python_version()
        self.pid = self.info["pid"]
        self.functions = {f[0]: f for f in self._reader.functions()}
        self._function_events = {}
        self.sampler = self._reader.sampler_stats()  # the sampler's counters, None if not its file
        self._symbols = {s[0]: s for s in self._reader.symbols()}

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

    def sample_frame(self, is_native, ident, line):
        """The Frame of one sampled frame: a Python function at a line, or a native symbol."""
        if is_native:
            _id, kernel, address, module, symbol = self._symbols.get(ident, (ident, False, 0, "", ""))
            return Frame(address, symbol or None, module or ("[kernel.kallsyms]" if kernel else None))
        function = self.function_event(ident)
        return Frame(function["BeginAddress"], function=function, line=line)

    def events(self, thread_ids=None, names=None):
        """Events of this file in timestamp order, optionally only of these threads / names.

        The sampler's samples are SampledProfile events, their stacks (native and Python frames
        merged, leaf first) from the file's prefix tree; a sample requested by a stack mark is
        that PythonStackSample's stack."""
        return self._reader.events(Event, self.frame, thread_ids, names, self.sample_frame)

    def stacks_at(self, queries):
        """For [(thread_id, timestamp)] in time order: each thread's stack (Frames, leaf first)
        just before that instant."""
        return self._reader.stacks_at(self.frame, queries)


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
