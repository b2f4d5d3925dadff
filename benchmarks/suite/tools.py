"""Every configuration the suite measures, one line each in TOOLS.

A Tool builds the command that runs the workload script under it: command(env, out, script)
gets the environment (its python and bin directory), a fresh empty output directory (the
tool's files go there; its size is the capture size) and the workload script's argv, and
returns the full argv. `needs` names what must be in the environment ("module:NAME" importable
by its python, "bin:NAME" an executable in its bin directory or on PATH); `since` the first
CPython that has it. Samplers give the rate they were asked for (per second of wall time, or
of the target's CPU time: perf's cpu-clock and our sampler) and a function counting the
samples that arrived, from the output directory, the environment (to read it with) and the
workload's own figures (its start and end, to count only the samples taken during the work
where the samples carry a time). `callgrind` is empty when the tool runs in
the target process (its instructions are counted), else the reason it is not counted.

Adding a tool is adding one line to TOOLS.
"""

import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

OUTSIDE = "samples from another process: it adds no instructions to the target's"
TIMER = ("samples on a wall-clock timer: under valgrind's ~50x slowed execution it takes ~50x the samples per "
         "call, so the count is no per-call figure")
CPU_TIMER = ("samples every millisecond of the target's CPU time, which valgrind's ~50x slowed execution "
             "stretches: ~50x the samples per call, so the count is no per-call figure")


@dataclass
class Tool:
    name: str
    kind: str  # "baseline", "etwtrace", "CPython", "tracer" or "sampler"
    command: Callable
    needs: str = ""
    since: Tuple[int, int] = (3, 9)
    rate: int = 0
    clock: str = "wall"  # what the rate is per: "wall" time, or the target's "cpu" time
    samples: Optional[Callable] = None
    callgrind: str = ""
    script_args: Tuple[str, ...] = field(default_factory=tuple)


def prefix(*parts):
    """A command that is `parts` (with {py}, {bin}/NAME and {out}/NAME expanded) then the script."""

    def build(env, out, script):
        return [expand(p, env, out) for p in parts] + list(script)

    return build


def expand(part, env, out):
    if part == "{py}":
        return env.python
    if part.startswith("{bin}/"):
        return env.executable(part[len("{bin}/"):])
    if part.startswith("{out}/"):
        return os.path.join(out, part[len("{out}/"):])
    return part


def scalene(env, out, script):
    # Scalene takes the program's arguments after "---".
    return [env.executable("scalene"), "run", "--cpu-only", "-o", os.path.join(out, "scalene.json"),
            script[0], "---", *script[1:]]


def capture_samples(out, env, work=None):
    """CPU samples in an etwtrace capture: its SampledProfile events, read by read() (the events
    file's layout is the reader's business: counting its lines broke with its version 2)."""
    return read_samples(env, [os.path.join(out, "capture")], work)


def pyspy_samples(out, env=None, work=None):
    """py-spy's raw format: one 'frame;frame;... COUNT' line per distinct stack."""
    total = 0
    with open(os.path.join(out, "py-spy.txt")) as f:
        for line in f:
            head, _, count = line.rstrip().rpartition(" ")
            if head and count.isdigit():
                total += int(count)
    return total


def austin_samples(out, env=None, work=None):
    """Austin's text format: one line per sample and thread; '#' lines are metadata."""
    with open(os.path.join(out, "austin.txt"), errors="replace") as f:
        return sum(1 for line in f if line.strip() and not line.startswith("#"))


# argv: START_NS END_NS PATH...; counts the SampledProfile events timed from START_NS to END_NS.
COUNT_SAMPLES = ("import sys, etwtrace; start, end = int(sys.argv[1]), int(sys.argv[2]); "
                 "print(sum(1 for path in sys.argv[3:] for e in etwtrace.read(path, names={'SampledProfile'}) "
                 "if start <= e.timestamp <= end))")


def read_samples(env, paths, work=None):
    """Samples in etwtrace's outputs (both clocks are CLOCK_MONOTONIC): those taken during the work
    when `work` (the workload's figures) is given, else all of them."""
    start, end = (int(work["start"] * 1e9), int(work["end"] * 1e9)) if work else (0, 2 ** 64)
    proc = subprocess.run([env.python, "-c", COUNT_SAMPLES, str(start), str(end), *paths],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def trace_samples(out, env, work=None):
    """The SampledProfile events of etwtrace's trace files (the sampler mode's), read by read()."""
    return read_samples(env, [os.path.join(out, name) for name in sorted(os.listdir(out)) if name.endswith(".etwtrace")],
                        work)


TOOLS = [
    Tool("untraced", "baseline", prefix("{py}")),
    Tool("etwtrace loaded, idle", "etwtrace", prefix("{py}"), script_args=("--load-etwtrace",)),
    Tool("etwtrace stack", "etwtrace", prefix("{py}", "-m", "etwtrace", "--stack", "--quiet", "--")),
    Tool("etwtrace instrumented", "etwtrace", prefix("{py}", "-m", "etwtrace", "--instrument", "--quiet", "--")),
    Tool("etwtrace stack + perf (--capture)", "etwtrace",
         prefix("{py}", "-m", "etwtrace", "--stack", "--quiet", "--capture", "{out}/capture", "--"),
         needs="bin:perf", rate=999, clock="cpu", samples=capture_samples,
         callgrind="perf records the program as its child; the per-call cost is the stack mode's"),
    Tool("etwtrace sampler", "etwtrace",
         prefix("{py}", "-m", "etwtrace", "--sampler", "--sample-rate", "1000", "--quiet", "--"),
         rate=1000, clock="cpu", samples=trace_samples, callgrind=CPU_TIMER),
    Tool("etwtrace sampler, default 100 Hz", "etwtrace", prefix("{py}", "-m", "etwtrace", "--sampler", "--quiet", "--"),
         rate=100, clock="cpu", samples=trace_samples, callgrind=CPU_TIMER),
    Tool("-X perf", "CPython", prefix("{py}", "-X", "perf"), since=(3, 12)),
    Tool("-X perf_jit", "CPython", prefix("{py}", "-X", "perf_jit"), since=(3, 13)),
    Tool("cProfile", "tracer", prefix("{py}", "-m", "cProfile", "-o", "{out}/cprofile.pstats")),
    Tool("yappi", "tracer", prefix("{py}", "-m", "yappi", "-b", "-o", "{out}/yappi.pstats"), needs="module:yappi"),
    Tool("VizTracer", "tracer", prefix("{py}", "-m", "viztracer", "--quiet", "-o", "{out}/viztracer.json", "--"),
         needs="module:viztracer"),
    Tool("pyinstrument", "sampler", prefix("{py}", "-m", "pyinstrument", "-r", "text", "-o", "{out}/pyinstrument.txt"),
         needs="module:pyinstrument", callgrind=TIMER),
    Tool("py-spy record", "sampler",
         prefix("{bin}/py-spy", "record", "-r", "1000", "-f", "raw", "-o", "{out}/py-spy.txt", "--", "{py}"),
         needs="bin:py-spy", rate=1000, samples=pyspy_samples, callgrind=OUTSIDE),
    Tool("py-spy record --native", "sampler",
         prefix("{bin}/py-spy", "record", "--native", "-r", "1000", "-f", "raw", "-o", "{out}/py-spy.txt", "--",
                "{py}"),
         needs="bin:py-spy", rate=1000, samples=pyspy_samples, callgrind=OUTSIDE),
    Tool("Scalene (CPU only)", "sampler", scalene, needs="bin:scalene", callgrind=TIMER),
    Tool("Austin", "sampler", prefix("{bin}/austin", "-i", "1000", "-o", "{out}/austin.txt", "{py}"),
         needs="bin:austin", rate=1000, samples=austin_samples, callgrind=OUTSIDE),
]


def by_name(name):
    for tool in TOOLS:
        if tool.name == name:
            return tool
    raise KeyError(name)


def json_safe(tool):
    return {"kind": tool.kind, "rate": tool.rate or None, "clock": tool.clock if tool.rate else None,
            "since": ".".join(map(str, tool.since))}


__all__ = ["TOOLS", "Tool", "by_name", "json_safe"]
