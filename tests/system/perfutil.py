"""Helpers for tests that run real `perf`: availability checks, recording, `perf inject --jit`,
USDT probe registration, and parsing `perf script` output into stacks.

Used by test_stack_sampling.py and meant for any test that needs perf (capture tests too).

    problem = perf_problem()            # None, or a sentence saying why perf cannot work here
    with usdt_events(library, ["stack_sample"]) as events:
        run = record(cmd, data, events=events, call_graph="dwarf")
    samples = parse_script(script(inject_jit(data)))
    python_stack(samples[0], filename="/path/by_arg.py")   # ['b', 'a', '<module>']
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PERF = shutil.which("perf")
TRACEFS = Path("/sys/kernel/tracing")

_perf_problem = None
_perf_checked = False


def perf_problem():
    """None when `perf record` works here, else a sentence saying why it cannot."""
    global _perf_problem, _perf_checked
    if _perf_checked:
        return _perf_problem
    _perf_checked = True
    if PERF is None:
        _perf_problem = "perf is not installed (Debian: apt-get install linux-perf)"
        return _perf_problem
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "probe.data")
        proc = subprocess.run([PERF, "record", "-q", "-N", "-k", "1", "-e", "cpu-clock", "-o", out, "--", "true"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            _perf_problem = ("perf record is not permitted here (kernel.perf_event_paranoid or container "
                             f"limits): {proc.stderr.strip()[:200]}")
    return _perf_problem


def tracefs_problem():
    """None when uprobe-based USDT events can be created, else why not (mounts tracefs as root)."""
    if (TRACEFS / "uprobe_events").exists():
        return None
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True)
        if (TRACEFS / "uprobe_events").exists():
            return None
    return "tracefs is not mounted (as root: mount -t tracefs nodev /sys/kernel/tracing), so USDT probes cannot be recorded"


@contextlib.contextmanager
def usdt_events(library, probes):
    """Registers the library's USDT probes as uprobe events for the duration; yields event names.

    One tracefs group per test process (`etwtest_<pid>`), one event per probe *site* (a probe
    inlined in several places has several sites: `mark`, `mark_1`, ...), each with its SDT
    semaphore and upstream's typed fields (see etwtrace._capture.probes). Unlike `perf probe
    %sdt_...`, this neither touches ~/.debug nor fights other users over the global
    `sdt_etwtrace` group.
    """
    from etwtrace._capture import probes as _perfprobes

    problem = tracefs_problem()
    if problem:
        raise RuntimeError(problem)
    group = f"etwtest_{os.getpid()}"
    path = os.path.realpath(library)
    lines = []
    names = []
    for note in _perfprobes.read_sdt_notes(path):
        if note.name not in probes:
            continue
        line = _perfprobes.uprobe_definition(group, note, path)
        if not line:
            continue
        count = sum(1 for n in names if n == note.name or n.startswith(note.name + "_"))
        name = note.name if count == 0 else f"{note.name}_{count}"
        lines.append(line.replace(f"p:{group}/{note.name} ", f"p:{group}/{name} ", 1))
        names.append(name)
    created = []
    try:
        for name, line in zip(names, lines):
            _perfprobes._write_uprobe_events(str(TRACEFS), [line])
            created.append(name)
        yield [f"{group}:{name}" for name in created]
    finally:
        for name in created:
            try:
                _perfprobes._write_uprobe_events(str(TRACEFS), [f"-:{group}/{name}"])
            except OSError:
                pass


def record(cmd, output, events=(), call_graph="dwarf", frequency=None, env=None, timeout=120, extra=()):
    """`perf record -k 1` (CLOCK_MONOTONIC, what jitdump needs) around `cmd`.

    Returns the CompletedProcess of perf (the program's own stdout/stderr pass through it).
    """
    args = [PERF, "record", "-q", "-N", "-k", "1", "-o", str(output)]
    for event in events:
        args += ["-e", event]
    if frequency:
        args += ["-F", str(frequency)]
    if call_graph:
        args += ["--call-graph", call_graph]
    args += list(extra)
    args += ["--", *map(str, cmd)]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def inject_jit(data, output=None):
    """`perf inject --jit`: turns jitdump records into ELF objects perf can symbolize and unwind."""
    output = Path(output or f"{data}.jit")
    proc = subprocess.run([PERF, "inject", "--jit", "-i", str(data), "-o", str(output)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"perf inject --jit failed: {proc.stderr.strip()}")
    return output


def script(data, fields="comm,pid,tid,time,event,trace,ip,sym,dso"):
    proc = subprocess.run([PERF, "script", "-i", str(data), "-F", fields], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"perf script failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Frame:
    address: int
    symbol: str          # without "+0x.." offset; "[unknown]" when perf has no name
    dso: str

    @property
    def python(self):
        """(qualname, filename) for a py:: frame, else None."""
        if not self.symbol.startswith("py::"):
            return None
        qualname, _, filename = self.symbol[4:].partition(":")
        return qualname, filename


@dataclass
class Sample:
    comm: str
    pid: int
    tid: int
    event: str
    trace: str
    frames: list = field(default_factory=list)   # innermost first


_HEADER = re.compile(r"^(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+(?:[\d.]+:\s+)?(?P<event>[\w:.-]+):\s?(?P<trace>.*)$")
_FRAME = re.compile(r"^\s+(?P<addr>[0-9a-f]+)\s+(?P<sym>.*?)\s+\((?P<dso>.*)\)$")


def parse_script(text):
    """Samples from `perf script -F comm,pid,tid,time,event,trace,ip,sym,dso` output."""
    samples = []
    current = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        if current is not None:
            m = _FRAME.match(line)
            if m:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group("sym"))
                current.frames.append(Frame(int(m.group("addr"), 16), sym, m.group("dso")))
                continue
        m = _HEADER.match(line)
        if m:
            current = Sample(m.group("comm"), int(m.group("pid")), int(m.group("tid")), m.group("event"),
                             m.group("trace").strip())
            samples.append(current)
    return samples


def python_stack(sample, filename=None):
    """Python functions on a sample's stack, innermost first (only those from `filename`)."""
    names = []
    for frame in sample.frames:
        py = frame.python
        if py and (filename is None or py[1] == str(filename)):
            names.append(py[0])
    return names


def event_name(sample):
    """'stack_sample' for 'sdt_etwtrace:stack_sample_1' etc."""
    name = sample.event.split(":")[-1]
    return re.sub(r"_\d+$", "", name)


def trace_args(sample):
    """{'Mark': 'text', 'Kind': '1'} from the trace field of a USDT event."""
    return {k: (quoted if quoted or plain == "" else plain)
            for k, quoted, plain in re.findall(r'(\w+)=(?:"([^"]*)"|(\S*))', sample.trace)}


def remove_symbol_files(pid, jitdump_dir="/tmp"):
    """Removes the perf map and jitdump files a traced process `pid` left (only those)."""
    for path in (Path(f"/tmp/perf-{pid}.map"), Path(jitdump_dir) / f"jit-{pid}.dump"):
        try:
            path.unlink()
        except OSError:
            pass
    for path in Path(jitdump_dir).glob(f"jitted-{pid}-*.so"):
        try:
            path.unlink()
        except OSError:
            pass


def etwtrace_library(python=sys.executable):
    """Path of the _etwtrace extension module the interpreter `python` imports."""
    proc = subprocess.run([python, "-c", "import etwtrace._etwtrace as m; print(m.__file__)"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()
