"""The one event model every reader emits, and its one text form (`python -m etwtrace dump`).

An `Event` has upstream's name (PythonThread, PythonFunction, PythonMark, PythonStackSample,
PythonFunctionPush, PythonFunctionPop) or perf's (SampledProfile, CSwitch), `pid`, `thread_id`
(the kernel thread id), `timestamp` (ns, CLOCK_MONOTONIC), `opcode` ("Info", "Start", "Stop"),
upstream's fields as items (``e["FunctionID"]``, also `e.fields`, a dict) and `stack`, leaf
first. Each field has one type whatever the source: `IsPythonCode` is a bool, addresses and
ids are ints, texts are str.

A stack entry is a `Frame`: an int (the address, so that upstream's ``begin <= ip <= end``
checks work) with `.symbol` and `.module` (what perf resolved it to, None for frames rebuilt
from a trace file) and `.function`: the PythonFunction event of the Python function the frame
runs, or None for a native frame. `.line` is the line a sampler's frame was running (the
function's first line for other frames).
"""

import os

from .._etwtrace import EventBase
from .._schema import MARK_OPCODES


class Frame(int):
    """A stack frame: its address (the int value), symbol, module and Python function if any."""

    def __new__(cls, address, symbol=None, module=None, function=None, line=None):
        self = super().__new__(cls, address)
        self.symbol = symbol
        self.module = module
        self.function = function
        self._line = line
        return self

    @property
    def address(self):
        return int(self)

    @property
    def is_python(self):
        """True for a frame running Python code (a thunk, or a Python function of a trace)."""
        return self.function is not None and self.function["IsPythonCode"]

    @property
    def name(self):
        """The function's name for a frame that has one (Python or traced C), else the symbol."""
        if self.function is not None:
            return self.function["Name"]
        return self.symbol

    @property
    def source_file(self):
        return self.function["SourceFile"] if self.function is not None else None

    @property
    def line(self):
        """The line running (sampler frames), else the function's first line."""
        if self._line is not None:
            return self._line
        return self.function["LineNumber"] if self.function is not None else None

    @property
    def function_id(self):
        return self.function["FunctionID"] if self.function is not None else None

    def __repr__(self):
        where = self.name or "?"
        module = f" in {os.path.basename(self.module)}" if self.module else ""
        return f"<Frame {int(self):#x} {where}{module}>"

    def __reduce__(self):
        return (Frame, (int(self), self.symbol, self.module, self.function, self._line))


class Event(EventBase):
    """One event: .name, .pid, .thread_id, .timestamp (ns), .opcode, .stack; fields by name.

    The attributes live in the native EventBase, so that a trace file's reader can make an
    event without running Python code; the `fields` and `stack` of those events are built
    when first read. `source` says where an event comes from: "trace" (a trace file), "perf"
    (a perf sample or tracepoint), "probe" (a USDT probe recorded by perf) or "jitdump".
    `python_stack`: perf samples of an instrumented process get the Python stack at that
    instant, rebuilt from the trace file's calls (Frames), leaf first; None where there is none.
    """

    __slots__ = ()

    def __init__(self, name, pid, thread_id, timestamp, fields=None, stack=(), opcode="Info",
                 cpu=-1, source="trace"):
        self.name = name
        self.pid = pid
        self.thread_id = thread_id
        self.timestamp = timestamp
        self.opcode = opcode
        self.fields = fields if fields is not None else {}
        self.cpu = cpu
        self.source = source
        self.stack = stack

    # Upstream's decoder calls it event_name.
    @property
    def event_name(self):
        return self.name

    def __getitem__(self, key):
        return self.fields[key]

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __contains__(self, key):
        return key in self.fields

    def keys(self):
        return self.fields.keys()

    def items(self):
        return self.fields.items()

    def __repr__(self):
        return f"<Event {self.name} pid={self.pid} tid={self.thread_id} t={self.timestamp} {self.fields!r}>"

    def __reduce__(self):
        return (_rebuild_event, ((self.name, self.pid, self.thread_id, self.timestamp, self.fields, self.stack,
                                  self.opcode, self.cpu, self.source), self.python_stack))


def _rebuild_event(args, python_stack):
    event = Event(*args)
    event.python_stack = python_stack
    return event


def mark_opcode(kind):
    """The opcode of a mark of `kind` (write_mark's kind: _schema.MARK ... STACK_SAMPLE)."""
    return MARK_OPCODES[kind] if 0 <= kind < len(MARK_OPCODES) else "Info"


def _frame_text(frame):
    function = frame.function
    if function is not None:
        where = function["SourceFile"]
        line = frame.line
        if line:
            where += f":{line}"
        text = f"py:{function['Name']}" if frame.is_python else function["Name"]
        return f"{text}({where})" if where else text
    symbol = frame.symbol or f"{int(frame):#x}"
    return f"{symbol}({os.path.basename(frame.module)})" if frame.module else symbol


def format_event(event, origin_ns=0):
    """One line of text for an event: time (seconds since `origin_ns`), name/opcode, pid, tid,
    fields, stack (leaf first; Python frames with their file and first line)."""
    name = event.name + (f"/{event.opcode}" if event.opcode not in (None, "Info") else "")
    parts = [f"{(event.timestamp - origin_ns) / 1e9:.9f}", name, f"pid={event.pid}", f"tid={event.thread_id}"]
    for key, value in event.fields.items():
        if isinstance(value, int) and not isinstance(value, bool) and (
                key.endswith("Address") or key == "InstructionPointer"):
            parts.append(f"{key}={value:#x}")
        elif isinstance(value, str):
            parts.append(f"{key}={value!r}")
        else:
            parts.append(f"{key}={value}")
    stack = event.stack
    if stack:
        parts.append("stack=" + " <- ".join(_frame_text(frame) for frame in stack))
    return " ".join(parts)
