"""Reading a capture bundle (see docs/capture.md): its events, in time order, with upstream names.

Sources, merged and sorted by timestamp (CLOCK_MONOTONIC ns everywhere):

* perf.data, decoded by `perf script -s _perf_script.py` with the bundle's build-id cache
  (`--buildid-dir PATH/buildid`), so stacks resolve the same after the bundle is moved or copied
  to another machine. perf does the DWARF unwinding and symbolizing; the script prints one JSON
  line per event, parsed here (about 1 µs of Python per frame). Events:
    - the etwtrace USDT probes  -> PythonThread, PythonFunction, PythonMark,
      PythonStackSample, PythonFunctionPush, PythonFunctionPop (upstream field names);
    - sampled events (cpu-clock) -> SampledProfile; sched:sched_switch -> CSwitch.
* jit/jit-<pid>.dump: in stack mode every thunk is a code-load record; those give the
  PythonFunction events (address range, name, file, first line) of processes for which no
  `function` probe was recorded (e.g. tracefs was missing).
* traces/*: instrumented trace files, read by etwtrace's trace-file reader; for a process that has
  one, its Python events come from the file (lossless), not from the probes.

Every stack frame is a `Frame`: an int (the address, so upstream-style `begin <= ip <= end`
checks work) with .symbol, .module and, inside a thunk, .function (the PythonFunction event).
"""

import bisect
import json
import os
import shutil
import struct
import subprocess
import sys

from ._capture import ENV_PERF, MANIFEST, is_capture

PROBE_EVENT_NAMES = {
    "thread": "PythonThread",
    "function": "PythonFunction",
    "mark": "PythonMark",
    "stack_sample": "PythonStackSample",
    "function_push": "PythonFunctionPush",
    "function_pop": "PythonFunctionPop",
}
PYTHON_EVENTS = frozenset(PROBE_EVENT_NAMES.values())


class CaptureReadError(Exception):
    pass


class Frame(int):
    """A stack frame: its address (the int value), symbol, module and Python function if any."""

    def __new__(cls, address, symbol=None, module=None, function=None):
        self = super().__new__(cls, address)
        self.symbol = symbol
        self.module = module
        self.function = function
        return self

    @property
    def address(self):
        return int(self)

    @property
    def is_python(self):
        return self.function is not None

    @property
    def name(self):
        """The Python function's name for a Python frame, else the native symbol."""
        if self.function is not None:
            return self.function["Name"]
        return self.symbol

    # The same attributes as the trace reader's StackFrame, so code can handle both.
    @property
    def source_file(self):
        return self.function["SourceFile"] if self.function is not None else None

    @property
    def line(self):
        return self.function["LineNumber"] if self.function is not None else None

    @property
    def function_id(self):
        return self.function["FunctionID"] if self.function is not None else None

    def __repr__(self):
        where = self.function["Name"] if self.function is not None else (self.symbol or "?")
        return f"<Frame {int(self):#x} {where} in {os.path.basename(self.module or '?')}>"

    def __reduce__(self):
        return (Frame, (int(self), self.symbol, self.module, self.function))


class Event:
    """One event: .name, .pid, .thread_id, .timestamp (ns), .stack; fields by upstream name."""

    __slots__ = ("name", "pid", "thread_id", "timestamp", "fields", "stack", "cpu", "source", "opcode",
                 "python_stack")

    def __init__(self, name, pid, thread_id, timestamp, fields=None, stack=(), cpu=-1, source="perf",
                 opcode=None):
        self.name = name
        self.opcode = opcode
        # Instrumented processes: for samples and context switches, the Python stack at that
        # instant rebuilt from the trace file's calls (Frames with .function), leaf first.
        self.python_stack = None
        self.pid = pid
        self.thread_id = thread_id
        self.timestamp = timestamp
        self.fields = fields if fields is not None else {}
        self.stack = list(stack)
        self.cpu = cpu
        self.source = source

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

    def to_line(self):
        """One line of text (python -m etwtrace dump)."""
        parts = [f"{self.timestamp / 1e9:.9f}", self.name + (f"/{self.opcode}" if self.opcode not in (None, "Info") else ""),
                 f"pid={self.pid}", f"tid={self.thread_id}"]
        for key, value in self.fields.items():
            if isinstance(value, int) and (key.endswith("Address") or key == "InstructionPointer"):
                parts.append(f"{key}={value:#x}")
            else:
                parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
        if self.stack:
            frames = []
            for frame in self.stack:
                if getattr(frame, "function", None) is not None:
                    frames.append(f"py:{frame.function['Name']}")
                else:
                    sym = getattr(frame, "symbol", None) or f"{int(frame):#x}"
                    module = getattr(frame, "module", None)
                    frames.append(f"{sym}({os.path.basename(module)})" if module else sym)
            parts.append("stack=" + " <- ".join(frames))
        return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# perf.data


def _perf_command():
    perf = os.environ.get(ENV_PERF) or shutil.which("perf")
    if not perf:
        raise CaptureReadError(
            "reading a capture's perf.data needs perf; install it with `apt-get install linux-perf`")
    return perf


def _event_from_perf(name, pid, tid, ts, cpu, fields, stack):
    group, _, event = name.partition(":")
    if event and (group.startswith("etwtrace_") or group == "sdt_etwtrace"):
        # One uprobe event per probe site: function, function_1, ... are all `function`.
        base, _, suffix = event.rpartition("_")
        if base and suffix.isdigit():
            event = base
        upstream = PROBE_EVENT_NAMES.get(event)
        if upstream is None:
            return None
        opcode = None
        if upstream == "PythonThread":
            opcode = "Start" if fields.get("Start") else "Stop"
        elif upstream == "PythonMark":
            opcode = {1: "Start", 2: "Stop"}.get(fields.get("Kind"), "Info")
        return Event(upstream, pid, tid, ts, fields, stack, cpu, "probe", opcode)
    if name == "sched:sched_switch":
        return Event("CSwitch", pid, tid, ts, {
            "OldThreadId": fields.get("prev_pid"),
            "NewThreadId": fields.get("next_pid"),
            "OldThreadState": fields.get("prev_state"),
            "OldThreadPriority": fields.get("prev_prio"),
            "NewThreadPriority": fields.get("next_prio"),
            "OldProcessName": fields.get("prev_comm"),
            "NewProcessName": fields.get("next_comm"),
        }, stack, cpu)
    if name == "dummy" or name.startswith("dummy"):
        return None
    short = name.split("/", 1)[0] if "/" in name else name
    fields = dict(fields)
    fields["Event"] = short
    fields["ThreadId"] = tid
    return Event("SampledProfile", pid, tid, ts, fields, stack, cpu)


def read_perf_data(path, perf=None):
    """Events of PATH/perf.data (unsorted: perf orders them per its own rules)."""
    path = os.path.abspath(path)
    data = os.path.join(path, "perf.data")
    if not os.path.exists(data):
        return []
    perf = perf or _perf_command()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_perf_script.py")
    command = [perf, "--buildid-dir", os.path.join(path, "buildid"), "script", "-f", "-i", data,
               "-s", script, "--no-inline"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=path)
    modules = {}
    events = []
    loads = json.loads
    for raw in proc.stdout:
        if not raw.startswith(b"{"):
            continue
        try:
            record = loads(raw)
        except ValueError:
            continue
        if "m" in record:
            index, module = record["m"]
            modules[index] = module
            continue
        stack = [Frame(ip, sym, modules.get(mod)) for ip, sym, mod in record["s"]]
        event = _event_from_perf(record["e"], record["p"], record["t"], record["ts"], record["c"],
                                 record["f"], stack)
        if event is not None:
            events.append(event)
    err = proc.stderr.read().decode(errors="replace")
    proc.wait()
    if proc.returncode != 0 and not events:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        raise CaptureReadError(f"perf script could not read {data} ({lines[-1] if lines else proc.returncode})")
    return events


# ---------------------------------------------------------------------------------------------
# jitdump

_JIT_MAGIC = 0x4A695444
_JIT_CODE_LOAD = 0
_JIT_CODE_DEBUG_INFO = 2


def _split_py_name(name):
    """'py::qualname:file' -> (qualname, file); other names -> (name, '')."""
    if name.startswith("py::"):
        qualname, _, filename = name[4:].partition(":")
        return qualname, filename
    return name, ""


def read_jitdump(path):
    """PythonFunction events from one jitdump file (code-load + debug-info records)."""
    events = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 40:
        return events
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic == _JIT_MAGIC else ">"
    if struct.unpack_from(endian + "I", data, 0)[0] != _JIT_MAGIC:
        return events
    _version, header_size, _mach, _pad, file_pid = struct.unpack_from(endian + "IIIII", data, 4)
    pos = header_size
    lines = {}
    while pos + 16 <= len(data):
        rec_id, rec_size, timestamp = struct.unpack_from(endian + "IIQ", data, pos)
        if rec_size < 16 or pos + rec_size > len(data):
            break  # a record cut short by a crash: everything before it is intact
        body = pos + 16
        if rec_id == _JIT_CODE_DEBUG_INFO:
            code_addr, nr_entry = struct.unpack_from(endian + "QQ", data, body)
            if nr_entry:
                _addr, lineno, _discrim = struct.unpack_from(endian + "Qii", data, body + 16)
                lines[code_addr] = lineno
        elif rec_id == _JIT_CODE_LOAD:
            pid, tid, _vma, code_addr, code_size, code_index = struct.unpack_from(endian + "IIQQQQ", data, body)
            name_start = body + 40
            name_end = data.index(b"\0", name_start, pos + rec_size)
            qualname, filename = _split_py_name(data[name_start:name_end].decode("utf-8", "replace"))
            events.append(Event("PythonFunction", pid or file_pid, tid, timestamp, {
                "FunctionID": code_index,
                "BeginAddress": code_addr,
                "EndAddress": code_addr + code_size,
                "LineNumber": lines.pop(code_addr, 0),
                "SourceFile": filename,
                "Name": qualname,
                "IsPythonCode": 1,
            }, source="jitdump"))
        pos += rec_size
    return events


# ---------------------------------------------------------------------------------------------
# Trace files (instrumented mode)


def read_trace_files(path):
    """Events of the instrumented trace files in PATH/traces, through etwtrace's own reader."""
    trace_dir = os.path.join(path, "traces")
    if not os.path.isdir(trace_dir) or not os.listdir(trace_dir):
        return []
    from . import _reader

    return list(_reader.read(trace_dir))


# ---------------------------------------------------------------------------------------------
# Putting it together


def _as_set(value):
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return {value}
    return set(value)


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
        elif isinstance(event, Event) and name in ("SampledProfile", "CSwitch"):
            event.python_stack = [
                Frame(0, function=functions.get((event.pid, fid)))
                for fid in reversed(stacks.get(event.thread_id, ()))
                if (event.pid, fid) in functions
            ]


def read_capture(path, pid=None, thread_id=None, event_names=None):
    """Iterate the events of the capture at PATH in timestamp order (see module docstring)."""
    path = os.path.abspath(path)
    if not is_capture(path):
        raise CaptureReadError(f"{path} is not an etwtrace capture (no {MANIFEST})")
    with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    if not manifest.get("complete"):
        print(f"etwtrace: warning: {path} is an incomplete capture (the recording was interrupted)",
              file=sys.stderr)

    perf_events = read_perf_data(path) if manifest.get("perf") else []
    trace_events = read_trace_files(path)
    traced_pids = {e.pid for e in trace_events}
    # Processes with a trace file: their Python events come from it (lossless).
    events = [e for e in perf_events if not (e.name in PYTHON_EVENTS and e.pid in traced_pids)]
    events.extend(trace_events)

    # A process's jitdump lists every thunk it made (the `function` probe gives the same
    # records, but only from the moment perf's uprobes reached that process): it wins.
    jitted = []
    jit_dir = os.path.join(path, "jit")
    if os.path.isdir(jit_dir):
        for name in sorted(os.listdir(jit_dir)):
            if name.startswith("jit-") and name.endswith(".dump"):
                jitted.extend(e for e in read_jitdump(os.path.join(jit_dir, name)) if e.pid not in traced_pids)
    if jitted:
        jit_pids = {e.pid for e in jitted}
        events = [e for e in events if not (e.name == "PythonFunction" and e.pid in jit_pids)]
        events.extend(jitted)

    events.sort(key=lambda e: e.timestamp)
    index = _FunctionIndex(e for e in events if e.name == "PythonFunction")
    for event in events:
        for frame in event.stack:
            if isinstance(frame, Frame) and frame.function is None:
                frame.function = index.lookup(event.pid, int(frame))

    if traced_pids:
        _attach_python_stacks(events, traced_pids)

    pids = _as_set(pid)
    tids = _as_set(thread_id)
    names = _as_set(event_names)
    for event in events:
        if pids is not None and event.pid not in pids:
            continue
        if tids is not None and event.thread_id not in tids:
            continue
        if names is not None and event.name not in names:
            continue
        yield event


def capture_streams(directory, pid=None, thread_id=None, names=None):
    """etwtrace._reader's directory source: a capture bundle's events, as one sorted stream."""
    if not is_capture(directory):
        return []
    return [read_capture(directory, pid=pid, thread_id=thread_id, event_names=names)]


# ---------------------------------------------------------------------------------------------
# python -m etwtrace dump PATH


def _line(event):
    """One line of text for any event (capture events and trace-file events alike)."""
    if isinstance(event, Event):
        return event.to_line()
    opcode = getattr(event, "opcode", None)
    parts = [f"{event.timestamp / 1e9:.9f}", event.name + (f"/{opcode}" if opcode not in (None, "Info") else ""),
             f"pid={event.pid}", f"tid={event.thread_id}"]
    for key, value in event.items():
        parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    stack = getattr(event, "stack", None)
    if stack:
        parts.append("stack=" + " <- ".join(f"py:{getattr(f, 'name', f)}" for f in stack))
    return " ".join(parts)


DUMP_USAGE = "usage: python -m etwtrace dump PATH [--pid PID] [--tid TID] [--event NAME]"


def dump_main(args):
    path = None
    pids, tids, names = [], [], []
    args = list(args)
    while args:
        arg = args.pop(0)
        key, eq, value = arg.partition("=")
        if key in ("--pid", "--tid", "--event"):
            if not eq:
                if not args:
                    print(f"etwtrace: {key} needs a value; {DUMP_USAGE}", file=sys.stderr)
                    return 1
                value = args.pop(0)
            try:
                if key == "--pid":
                    pids.append(int(value))
                elif key == "--tid":
                    tids.append(int(value))
                else:
                    names.append(value)
            except ValueError:
                print(f"etwtrace: {key} needs a number, not {value!r}", file=sys.stderr)
                return 1
        elif arg in ("-h", "--help"):
            print(DUMP_USAGE)
            return 0
        elif path is None:
            path = arg
        else:
            print(f"etwtrace: unexpected argument {arg!r}; {DUMP_USAGE}", file=sys.stderr)
            return 1
    if path is None:
        print(f"etwtrace: dump needs the path of a capture; {DUMP_USAGE}", file=sys.stderr)
        return 1
    if not os.path.exists(path):
        print(f"etwtrace: {path} does not exist; give the PATH that --capture wrote", file=sys.stderr)
        return 1
    try:
        out = sys.stdout
        import etwtrace

        selected = etwtrace.read(path, names=names or None)
        for event in selected:
            if pids and event.pid not in pids or tids and event.thread_id not in tids:
                continue
            out.write(_line(event) + "\n")
    except BrokenPipeError:
        # `dump | head`: stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (CaptureReadError, OSError, ValueError) as ex:
        print(f"etwtrace: cannot read {path}: {ex}", file=sys.stderr)
        return 1
    return 0
