"""Timing a command from outside, for the reader and report benchmarks: its wall and CPU
seconds and its peak RSS, and the instrumented trace of many tiny calls they both read."""

import re
import resource
import subprocess
import sys
import textwrap
import time

# argv: trace path, number of calls (two events each).
CALLS_TRACE = textwrap.dedent("""\
    import sys, etwtrace

    def tiny(i):
        return i

    def loop(n):
        for i in range(n):
            tiny(i)

    tracer = etwtrace.InstrumentedTracer(trace_path=sys.argv[1])
    tracer.enable()
    loop(int(sys.argv[2]))
    tracer.disable()
""")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Timed:
    """Wall seconds and CPU seconds (user + system of the command and the children it waited
    for, e.g. report's perf script) of what runs inside: on a loaded machine the CPU seconds
    are the steadier figure."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), _children_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = _children_cpu() - self._cpu


def run(command, **kwargs):
    """(Timed, CompletedProcess) of a command that must succeed (else the benchmark exits)."""
    with Timed() as timed:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, command))}\n{proc.stderr.decode()[-3000:]}")
    return timed, proc


def timed_rss(command):
    """(Timed, max RSS in MB, stdout) of a command under /usr/bin/time -v."""
    timed, proc = run(["/usr/bin/time", "-v", *command])
    rss = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return timed, int(rss.group(1)) / 1024 if rss else float("nan"), proc.stdout
