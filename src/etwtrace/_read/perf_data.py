"""perf's events of a capture: the symbolized events file, or perf.data through `perf script`.

At the end of a capture the supervisor runs `perf script -s perf_script.py` once, while the
recorded binaries are at hand, and keeps its output, interned (modules, frames, stacks, event
layouts, then batches of events naming a stack id), as PATH/events.jsonl.gz (`symbolize()`;
the layout is _bundle.EVENTS_FORMAT). `read_perf_data` lists the Events (read()); the report
streams them instead (`stream_perf_events`: nothing kept per event, each stack named by id). Reading a capture then needs neither perf nor the binaries, and works
the same on another machine. A capture that kept only perf.data (or one from an older etwtrace)
is read through `perf script` with the bundle's build-id cache (`--buildid-dir PATH/buildid`);
one whose supervisor was killed before finishing (perf.raw, no perf.data) is finished here as
far as possible (`perf inject --jit` with the jitdumps in jit/, then the same reading).

Events: the etwtrace USDT probes -> upstream's Python events; sampled events (cpu-clock)
-> SampledProfile; sched:sched_switch -> CSwitch.
"""

import gzip
import json
import os
import re
import subprocess
import tempfile
import threading
import zlib

from .. import _bundle
from .._errors import ReadError
from .._perf import INSTALL_HINT, perf_path
from .._schema import CSWITCH, MARK, PROBE_EVENT_NAMES, PROBE_GROUP_PREFIX, SAMPLED_PROFILE
from .events import Event, Frame, mark_opcode

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "perf_script.py")


def _perf_command(what):
    perf = perf_path()
    if not perf:
        raise ReadError(f"reading a capture's {what} needs perf; {INSTALL_HINT}")
    return perf


def _event_from_perf(name, pid, tid, ts, cpu, fields, stack, cls=Event):
    group, _, event = name.partition(":")
    if event and (group.startswith(PROBE_GROUP_PREFIX) or group == "sdt_etwtrace"):
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
            opcode = mark_opcode(fields.get("Kind", MARK))
        if "IsPythonCode" in fields:
            fields["IsPythonCode"] = bool(fields["IsPythonCode"])
        return cls(upstream, pid, tid, ts, fields, stack, opcode or "Info", cpu, "probe")
    if name == "sched:sched_switch":
        return cls(CSWITCH, pid, tid, ts, {
            "OldThreadId": fields.get("prev_pid"),
            "NewThreadId": fields.get("next_pid"),
            "OldThreadState": fields.get("prev_state"),
            "OldThreadPriority": fields.get("prev_prio"),
            "NewThreadPriority": fields.get("next_prio"),
            "OldProcessName": fields.get("prev_comm"),
            "NewProcessName": fields.get("next_comm"),
        }, stack, cpu=cpu, source="perf")
    if name.startswith("dummy"):
        return None
    short = name.split("/", 1)[0] if "/" in name else name
    fields["Event"] = short
    fields["ThreadId"] = tid
    return cls(SAMPLED_PROFILE, pid, tid, ts, fields, stack, cpu=cpu, source="perf")


class _Decoder:
    """The lines of perf_script.py's output or of an events file -> events as plain tuples
    (name, pid, tid, ns, cpu, fields, stack id), in the file's order.

    Reads both layouts of the events file: version 2's batches of rows under interned event
    layouts ({"n"}, {"b"}), and version 1's one {"e"} line per event.
    """

    def __init__(self):
        self.modules = {}
        self.frames = {}  # frame id -> (address, symbol, module)
        self.stacks = {}  # stack id -> [frame id, ...]
        self.layouts = {}  # layout id -> (event name, field names)
        self.header = None
        self.end = None
        self.summary = None  # perf_script.py's last line: {"events": N, "pids": [...]}
        self.count = 0  # events decoded

    def rows(self, lines):
        """(name, pid, tid, ts, cpu, fields, stack id) of each event line; the other lines fill
        the tables. A malformed line raises ValueError naming it (rows before it were given)."""
        loads = json.loads
        layouts = self.layouts
        for number, raw in enumerate(lines, 1):
            if not raw.startswith(b"{"):
                continue
            try:
                record = loads(raw)
            except ValueError:
                continue
            try:
                batch = record.get("b")
                if batch is not None:
                    for row in batch:
                        try:
                            name, keys = layouts[row[0]]
                            event = (name, row[1], row[2], row[3], row[4], dict(zip(keys, row[6:])), row[5])
                        except (KeyError, IndexError, TypeError):
                            continue  # a row of no known layout: not ours
                        if not all(_is_int(v) for v in event[1:5]) or not _is_int(event[6]):
                            raise TypeError("an event row's pid, tid, time, cpu and stack are integers")
                        self.count += 1
                        yield event
                    continue
                name = record.get("e")
                if name is not None:  # version 1
                    pid, tid, ts, cpu = (_integer(record, key) for key in ("p", "t", "ts", "c"))
                    stack_id = _integer(record, "k") if "k" in record else -1
                    fields = record["f"]
                    if not isinstance(name, str) or not isinstance(fields, dict):
                        raise TypeError("an event needs a name and a field object")
                    self.count += 1
                    yield name, pid, tid, ts, cpu, fields, stack_id
                else:
                    self._table_record(record)
            except (KeyError, TypeError, ValueError) as ex:
                raise ValueError(f"line {number} is not a valid record ({_describe(ex)})") from None

    def _table_record(self, record):
        if "y" in record:
            fid, address, symbol, module = record["y"]
            if not (_is_int(fid) and _is_int(address) and (symbol is None or isinstance(symbol, str))):
                raise TypeError("a frame is [id, address, symbol or null, module id]")
            self.frames[fid] = (address, symbol, self.modules.get(module) if _hashable(module) else None)
        elif "k" in record:
            sid, ids = record["k"]
            if not _is_int(sid) or not isinstance(ids, list) or not all(_is_int(i) for i in ids):
                raise TypeError("a stack is [id, [frame id, ...]]")
            self.stacks[sid] = ids
        elif "n" in record:
            index, name, keys = record["n"]
            if not _is_int(index) or not isinstance(name, str) or not isinstance(keys, list) \
                    or not all(isinstance(k, str) for k in keys):
                raise TypeError("a layout is [id, event name, [field name, ...]]")
            self.layouts[index] = (name, tuple(keys))
        elif "m" in record:
            index, module = record["m"]
            if not _is_int(index) or not isinstance(module, str):
                raise TypeError("a module is [id, path]")
            self.modules[index] = module
        elif "format" in record:
            if not _is_int(record.get("version", 1)):
                raise TypeError("the header's version is not an integer")
            self.header = record
        elif "end" in record:
            self.end = record["end"]
        elif "z" in record:
            self.summary = record["z"]

    def frame(self, stack_id, fid):
        frame = self.frames.get(fid)
        if frame is None:
            raise ValueError(f"stack {stack_id} names frame {fid}, which no earlier line defines")
        return frame


def _is_int(value):
    return type(value) is int


def _hashable(value):
    return isinstance(value, (int, str))


def _integer(record, key):
    value = record[key]
    if not _is_int(value):
        raise TypeError(f'"{key}" is {type(value).__name__}, not an integer')
    return value


def _describe(ex):
    if isinstance(ex, KeyError):
        return f"no {ex}"
    return str(ex) or type(ex).__name__


class _Parser(_Decoder):
    """The decoded events -> Events (read()'s list).

    Frames are shared by the events of one process (a Frame's `.function` depends on the
    process); every event gets its own list of them.
    """

    def __init__(self):
        super().__init__()
        self._built = {}  # (pid, stack id) -> [Frame, ...]
        self._frame_objects = {}  # (pid, frame id) -> Frame
        self.events = []

    def stack(self, pid, stack_id):
        built = self._built.get((pid, stack_id))
        if built is None:
            objects = self._frame_objects
            built = []
            for fid in self.stacks.get(stack_id, ()):
                frame = objects.get((pid, fid))
                if frame is None:
                    address, symbol, module = self.frame(stack_id, fid)
                    frame = objects[(pid, fid)] = Frame(address, symbol, module)
                built.append(frame)
            self._built[(pid, stack_id)] = built
        return list(built)

    def feed(self, lines):
        events = self.events
        for name, pid, tid, ts, cpu, fields, stack_id in self.rows(lines):
            stack = self.stack(pid, stack_id) if stack_id >= 0 else []
            event = _event_from_perf(name, pid, tid, ts, cpu, fields, stack)
            if event is not None:
                events.append(event)


class PerfEvent(Event):
    """An Event of the report's stream: its stack is built only when asked for, and
    `stack_key` ((pid, stack id, generation), None without a stack) names it without building
    it: `frame_tuples()` gives its frames as (address, symbol, module, function), leaf first."""

    __slots__ = ("stack_key", "_tables", "_stack")

    @property
    def stack(self):
        """Built from the stream's tables when first read (most events' stacks never are)."""
        try:
            return self._stack
        except AttributeError:
            pass
        self._stack = self._tables.stack(self.stack_key) if self.stack_key is not None else ()
        return self._stack

    @stack.setter
    def stack(self, value):
        self._stack = value

    def frame_tuples(self):
        return self._tables.frame_tuples(self.stack_key) if self.stack_key is not None else []


class _StreamTables(_Decoder):
    """The decoder of the report's stream: frames named per process by `functions` (an
    object with lookup(pid, address) -> PythonFunction event or None, and generation(pid),
    which changes when a process's functions do)."""

    def __init__(self, functions):
        super().__init__()
        self.functions = functions
        self._named = {}  # (pid, generation, frame id) -> (address, symbol, module, function)

    def frame_tuples(self, key):
        pid, stack_id, generation = key
        named = self._named
        out = []
        for fid in self.stacks.get(stack_id, ()):
            frame = named.get((pid, generation, fid))
            if frame is None:
                address, symbol, module = self.frame(stack_id, fid)
                frame = named[(pid, generation, fid)] = (address, symbol, module,
                                                         self.functions.lookup(pid, address))
            out.append(frame)
        return out

    def stack(self, key):
        return [Frame(a, s, m, f) for a, s, m, f in self.frame_tuples(key)]

    def events(self, lines, names):
        generation = self.functions.generation
        for name, pid, tid, ts, cpu, fields, stack_id in self.rows(lines):
            event = _event_from_perf(name, pid, tid, ts, cpu, fields, (), PerfEvent)
            if event is None or (names is not None and event.name not in names):
                continue
            if stack_id >= 0:
                event.stack_key = (pid, stack_id, generation(pid))
                event._tables = self
                del event._stack  # the constructor's empty stack: built when first read
            else:
                event.stack_key = None
            yield event


def _script_command(perf, bundle, data, buildid_dir=None):
    command = [perf]
    buildid_dir = buildid_dir or bundle.buildid_dir
    if os.path.isdir(buildid_dir):
        command += ["--buildid-dir", buildid_dir]
    return command + ["script", "-f", "-i", data, "-s", SCRIPT, "--no-inline"]


class _Stderr:
    """perf's stderr, read on a thread so that neither pipe can fill up and block perf."""

    def __init__(self, stream):
        self.text = ""
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        self.text = self._stream.read().decode(errors="replace")

    def join(self):
        self._thread.join()
        return self.text


def _perf_failure(data, err, returncode):
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("Warning")]
    return f"perf script could not read {data} ({lines[-1].strip() if lines else returncode})"


def symbolize(path, data, out_path, perf=None, buildid_dir=None):
    """Run `perf script` on `data` once and write its events as the events file `out_path`.

    Returns (number of events written, pids of the events). Raises ReadError when perf reads
    nothing.
    """
    bundle = _bundle.Bundle(path)
    perf = perf or _perf_command(os.path.basename(data))
    proc = subprocess.Popen(_script_command(perf, bundle, data, buildid_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=bundle.path)
    stderr = _Stderr(proc.stderr)
    summary = None
    tmp = out_path + ".tmp"
    try:
        # The lines go to the file as perf_script.py wrote them: no decoding on the way.
        with gzip.open(tmp, "wb", compresslevel=6) as out:
            out.write(json.dumps({"format": _bundle.EVENTS_FORMAT, "version": _bundle.EVENTS_VERSION}).encode() + b"\n")
            write = out.write
            for raw in proc.stdout:
                if raw.startswith(b'{"z"'):
                    try:
                        summary = json.loads(raw)["z"]
                    except (ValueError, KeyError):
                        pass
                elif raw.startswith(b"{"):
                    write(raw)
            proc.wait()
            err = stderr.join()
            if summary is None:
                # perf ended before the script's last line: count what it did write.
                out.flush()
                count, pids = _count_events(tmp)
            else:
                count, pids = int(summary.get("events", 0)), set(summary.get("pids", ()))
            if proc.returncode != 0 and not count:
                raise ReadError(_perf_failure(data, err, proc.returncode))
            write(json.dumps({"end": {"events": count}}).encode() + b"\n")
        os.replace(tmp, out_path)
    except BaseException:
        proc.kill()
        proc.wait()
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return count, pids


def _count_events(file):
    decoder = _Decoder()
    pids = set()
    try:
        with gzip.open(file, "rb") as f:
            for event in decoder.rows(f):
                pids.add(event[1])
    except (EOFError, OSError, ValueError, zlib.error):
        pass
    return decoder.count, pids


def _check_events_file(file, decoder, damage, warn):
    warn = warn or (lambda message: None)
    if decoder.header is None or decoder.header.get("format") != _bundle.EVENTS_FORMAT:
        if not decoder.count:
            raise ReadError(f"{file} is not an etwtrace events file (damaged: {damage or 'no header'})")
    elif decoder.header.get("version", 1) > _bundle.EVENTS_VERSION:
        warn(f"{file} was written by a newer etwtrace (events format version {decoder.header.get('version')}): "
             "what this version does not know is skipped")
    if decoder.end is None:
        warn(f"{file} is cut short ({damage or 'no end record'}): {decoder.count:,} events were read, "
             "the events after the cut are lost")


def read_events_file(file, warn=None):
    """Events of an events.jsonl.gz file; a file cut short is read up to the cut (warn says so)."""
    parser = _Parser()
    damage = None
    try:
        with gzip.open(file, "rb") as f:
            parser.feed(f)
    except (EOFError, OSError, ValueError, zlib.error) as ex:  # gzip.BadGzipFile is an OSError
        damage = str(ex) or type(ex).__name__
    _check_events_file(file, parser, damage, warn)
    return parser.events


def _perf_script(bundle, data, perf=None):
    perf = perf or _perf_command(os.path.basename(data))
    proc = subprocess.Popen(_script_command(perf, bundle, data), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=bundle.path)
    return proc, _Stderr(proc.stderr)


def _read_through_perf(bundle, data, perf=None):
    proc, stderr = _perf_script(bundle, data, perf)
    parser = _Parser()
    try:
        parser.feed(proc.stdout)
    except ValueError as ex:
        proc.kill()
        proc.wait()
        stderr.join()
        raise ReadError(f"perf script's output for {data} is malformed ({ex})") from None
    proc.wait()
    err = stderr.join()
    if proc.returncode != 0 and not parser.events:
        raise ReadError(_perf_failure(data, err, proc.returncode))
    return parser.events


def stream_perf_events(path, functions, names=None, warn=None, perf=None):
    """perf's events of the capture at PATH as PerfEvents, one at a time in the file's (time)
    order, keeping nothing per event: the report's pass. From events.jsonl.gz, else perf.data
    through `perf script` as it runs. None when neither is there (read_perf_data finishes a
    perf.raw). `functions`: see _StreamTables; names: keep only events of these names."""
    warn = warn or (lambda message: None)
    bundle = _bundle.Bundle(path)
    if os.path.exists(bundle.events):
        return _stream_events_file(bundle.events, _StreamTables(functions), names, warn)
    if os.path.exists(bundle.perf_data):
        return _stream_through_perf(bundle, _StreamTables(functions), names, perf)
    return None


def _stream_events_file(file, tables, names, warn):
    damage = None
    try:
        with gzip.open(file, "rb") as f:
            yield from tables.events(f, names)
    except (EOFError, OSError, ValueError, zlib.error) as ex:
        damage = str(ex) or type(ex).__name__
    _check_events_file(file, tables, damage, warn)


def _stream_through_perf(bundle, tables, names, perf):
    proc, stderr = _perf_script(bundle, bundle.perf_data, perf)
    try:
        yield from tables.events(proc.stdout, names)
        proc.wait()
        err = stderr.join()
        if proc.returncode != 0 and not tables.count:
            raise ReadError(_perf_failure(bundle.perf_data, err, proc.returncode))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


_STAT = re.compile(r"^\s*(\w+) events:\s+(\d+)")


def perf_stats(data, perf=None):
    """{samples, lost_chunks, lost_samples} of a perf.data file, from `perf report --stats`
    (the LOST records: chunks of events the kernel could not write because perf's buffer was
    full; LOST_SAMPLES: samples the kernel dropped), or None when perf cannot say."""
    perf = perf or perf_path()
    if not perf:
        return None
    try:
        out = subprocess.run([perf, "report", "-i", data, "--stats"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    stats = {"samples": 0, "lost_chunks": 0, "lost_samples": 0}
    aggregated = True
    for line in out.stdout.decode(errors="replace").splitlines():
        if line.rstrip().endswith(" stats:") and not line.strip().startswith("Aggregated"):
            aggregated = False  # per-event sections: LOST_SAMPLES counts samples there
            continue
        m = _STAT.match(line)
        if not m:
            continue
        kind, n = m.group(1), int(m.group(2))
        if aggregated and kind == "SAMPLE":
            stats["samples"] = n
        elif aggregated and kind == "LOST":
            stats["lost_chunks"] = n
        elif not aggregated and kind == "LOST_SAMPLES":
            stats["lost_samples"] += n
    return stats


def recording_finished(bundle):
    """True when perf-record.log says perf finished writing perf.raw."""
    try:
        with open(bundle.perf_log, encoding="utf-8", errors="replace") as f:
            return "Captured and wrote" in f.read()
    except OSError:
        return False


def finish_raw(bundle, warn):
    """perf inject --jit of an unfinished capture's perf.raw, into perf.data when the bundle is
    writable (the next read starts from there), else into a temporary file. Returns the path of
    the injected data (or of perf.raw itself when inject fails) and a cleanup callable."""
    perf = _perf_command(_bundle.PERF_RAW)
    finished = recording_finished(bundle)
    if finished and os.access(bundle.path, os.W_OK):
        out, cleanup = bundle.perf_data, (lambda: None)
    else:
        fd, out = tempfile.mkstemp(suffix=".data", prefix="etwtrace-")
        os.close(fd)

        def cleanup():
            try:
                os.unlink(out)
            except OSError:
                pass
    command = [perf]
    if os.path.isdir(bundle.buildid_dir):
        command += ["--buildid-dir", bundle.buildid_dir]
    inject = subprocess.run(command + ["inject", "--jit", "-i", bundle.perf_raw, "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if inject.returncode != 0 or not os.path.getsize(out):
        cleanup()
        if out == bundle.perf_data and os.path.exists(out):
            os.unlink(out)
        warn(f"{bundle.perf_raw}: perf inject --jit failed, so Python frames inside thunks may "
             "lack unwind information; reading the raw recording")
        return bundle.perf_raw, (lambda: None)
    return out, cleanup


def read_perf_data(path, warn=None, perf=None):
    """perf's events of the capture at PATH (unsorted: perf orders them per its own rules).

    From events.jsonl.gz when present, else perf.data through `perf script`, else perf.raw
    (a capture whose supervisor did not finish), injected first. `warn(message)` is told of
    anything lost on the way.
    """
    warn = warn or (lambda message: None)
    bundle = _bundle.Bundle(path)
    if os.path.exists(bundle.events):
        return read_events_file(bundle.events, warn)
    if os.path.exists(bundle.perf_data):
        return _read_through_perf(bundle, bundle.perf_data, perf)
    if os.path.exists(bundle.perf_raw):
        if not recording_finished(bundle):
            warn(f"{bundle.path}: perf had not finished writing {_bundle.PERF_RAW} (perf-record.log does not "
                 "say it wrote it: perf is still recording, or was killed); reading what it holds")
        data, cleanup = finish_raw(bundle, warn)
        try:
            if data == bundle.perf_data:
                # Finish the capture's reading for good: later reads take the events file.
                try:
                    symbolize(bundle.path, data, bundle.events, perf)
                    return read_events_file(bundle.events, warn)
                except OSError:
                    pass
            return _read_through_perf(bundle, data, perf)
        finally:
            cleanup()
    return []
