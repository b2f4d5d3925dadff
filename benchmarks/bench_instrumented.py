"""Instrumented mode overhead, side by side with the interpreter's own hook floors and other
profilers, on the interpreter running this script (run it once per CPython):

    python benchmarks/bench_instrumented.py [--tools] [--reps N] [--quick]

--tools installs yappi, VizTracer and pyinstrument from PyPI into a temporary directory
(pip --target) and measures them too; without it, only those already importable are measured.

Printed per workload: the untraced time, then each configuration's ratio traced/untraced
(median of N interleaved runs):
  floor:profile   a C profile function that does nothing (PyEval_SetProfile, all threads)
  floor:mon-py    sys.monitoring no-op callbacks, Python events only (3.12+)
  floor:mon-py+C  ... plus CALL/C_RETURN/C_RAISE (3.12+): the floor of our 3.12+ hook
  floor:pep523    a no-op PEP 523 eval-frame hook (sees Python frames only, not C calls)
  floor:pep523+monC  PEP 523 for Python frames + sys.monitoring CALL/C_RETURN/C_RAISE only:
                  the other exact combination on 3.12+
  etwtrace        InstrumentedTracer writing its trace file (Python and C calls recorded)
  cProfile, yappi, viztracer, pyinstrument
and for etwtrace: events written, ns per event on top of untraced and on top of the floor of
the hook it uses, and the C++ reader's decode rate on that trace.
"""

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import etwtrace
from etwtrace import _etwtrace as native
from workloads.fib import fib
from workloads.objects import Vec

# ---- workloads -------------------------------------------------------------------------------


def work_fib():
    fib(30)


def work_fib_quick():
    fib(25)


_TEXT = " ".join(f"word{i % 97} value={i * 7 % 1000}" for i in range(20000))
_WORD = re.compile(r"(\w+)=(\d+)")


def work_text():
    """Parsing and aggregating text: regex, dicts, str methods (many C calls)."""
    totals = {}
    for key, value in _WORD.findall(_TEXT):
        totals[key] = totals.get(key, 0) + int(value)
    doc = json.dumps(sorted(totals.items()))
    return len(json.loads(doc)), sum(len(w.upper()) for w in _TEXT.split()[:20000])


def work_objects():
    """Small objects and methods, generators and sorting with a key function."""
    vs = [Vec(i % 13, i % 7) for i in range(30000)]
    acc = Vec(0, 0)
    for v in vs:
        acc = acc.add(v)
    ordered = sorted(vs, key=Vec.norm2)
    evens = sum(1 for v in (w for w in ordered if w.x % 2 == 0))
    return acc.norm2(), evens


# ---- configurations ---------------------------------------------------------------------------


class Config:
    def __init__(self, name, start, stop):
        self.name = name
        self.start = start
        self.stop = stop


def _noop_profile():
    return Config("floor:profile", lambda: native._bench_noop_profile(True), lambda: native._bench_noop_profile(False))


def _noop_monitoring(c_events):
    name = "floor:mon-py+C" if c_events else "floor:mon-py"
    return Config(name, lambda: native._bench_noop_monitoring(True, c_events),
                  lambda: native._bench_noop_monitoring(False, c_events))


def _noop_pep523():
    return Config("floor:pep523", lambda: native._bench_noop_hook(True), lambda: native._bench_noop_hook(False))


def _noop_pep523_plus_c():
    """The alternative on 3.12+: PEP 523 for Python frames + sys.monitoring for C calls only."""

    def start():
        native._bench_noop_hook(True)
        native._bench_noop_monitoring(True, True, False)

    def stop():
        native._bench_noop_monitoring(False, True, False)
        native._bench_noop_hook(False)

    return Config("floor:pep523+monC", start, stop)


class _Ours:
    def __init__(self, directory):
        self.directory = directory
        self.tracer = None
        self.path = None
        self.n = 0

    def start(self):
        self.n += 1
        self.path = os.path.join(self.directory, f"bench-{self.n}.etwtrace")
        self.tracer = etwtrace.InstrumentedTracer(trace_path=self.path)
        self.tracer.enable()

    def stop(self):
        self.tracer.disable()


def _cprofile():
    import cProfile

    state = {}

    def start():
        state["p"] = cProfile.Profile()
        state["p"].enable()

    return Config("cProfile", start, lambda: state["p"].disable())


def _yappi():
    import yappi

    def start():
        yappi.clear_stats()
        yappi.set_clock_type("wall")
        yappi.start(builtins=True)

    return Config("yappi", start, yappi.stop)


def _viztracer():
    from viztracer import VizTracer

    state = {}

    def start():
        state["t"] = VizTracer(verbose=0, tracer_entries=3000000)
        state["t"].start()

    def stop():
        state["t"].stop()
        state["t"].clear()

    return Config("viztracer", start, stop)


def _pyinstrument():
    from pyinstrument import Profiler

    state = {}

    def start():
        state["p"] = Profiler()
        state["p"].start()

    return Config("pyinstrument", start, lambda: state["p"].stop())


def install_tools():
    target = tempfile.mkdtemp(prefix="etwtrace-bench-tools-")
    for tool in ("yappi", "viztracer", "pyinstrument"):
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", target, tool],
                           capture_output=True, text=True)
        if r.returncode:
            print(f"# {tool}: not installable here ({r.stderr.strip().splitlines()[-1:]})")
    sys.path.insert(0, target)


def timed(work, config=None):
    gc.collect()
    if config:
        config.start()
    t0 = time.perf_counter()
    work()
    t1 = time.perf_counter()
    if config:
        config.stop()
    return t1 - t0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools", action="store_true", help="pip install yappi/viztracer/pyinstrument to a temp dir")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fib(25) only, 3 reps (smoke test)")
    args = parser.parse_args()
    if args.tools:
        install_tools()
    reps = 3 if args.quick else args.reps
    monitoring = sys.version_info >= (3, 12)
    tmp = tempfile.mkdtemp(prefix="etwtrace-bench-")
    ours = _Ours(tmp)
    configs = [_noop_profile()]
    if hasattr(native, "_bench_noop_hook"):  # stack mode's no-op eval-frame hook
        configs.append(_noop_pep523())
    if monitoring:
        configs += [_noop_monitoring(False), _noop_monitoring(True)]
        if hasattr(native, "_bench_noop_hook"):
            configs.append(_noop_pep523_plus_c())
    configs.append(Config("etwtrace", ours.start, ours.stop))
    for factory in (_cprofile, _yappi, _viztracer, _pyinstrument):
        try:
            configs.append(factory())
        except ImportError:
            pass
    floor_name = "floor:mon-py+C" if monitoring else "floor:profile"
    workloads = [("fib(25)", work_fib_quick)] if args.quick else [
        ("fib(30)", work_fib), ("text", work_text), ("objects", work_objects)]

    print(f"# CPython {sys.version.split()[0]}  hook: {etwtrace.InstrumentedTracer()._get_technical_info()[-2]}")
    for wname, work in workloads:
        work()  # warm up (imports, specialisation)
        times = {"untraced": []}
        for c in configs:
            times[c.name] = []
        for _ in range(reps):  # interleaved so drifts hit every configuration alike
            times["untraced"].append(timed(work))
            for c in configs:
                times[c.name].append(timed(work, c))
        base = statistics.median(times["untraced"])
        ratios = {name: statistics.median(ts) / base for name, ts in times.items()}
        info = native._trace_info(native._read_trace(ours.path))
        events = info["events"]
        ours_t = statistics.median(times["etwtrace"])
        floor_t = statistics.median(times[floor_name])
        decode_events, decode_s = native._trace_decode_rate(ours.path, 3)
        cols = "  ".join(f"{name}={ratios[name]:.2f}x" for name in ratios if name != "untraced")
        print(f"{wname:8s} untraced={base * 1000:.1f}ms  {cols}")
        print(f"{'':8s} etwtrace: {events} events (lost {info['lost_events']}), "
              f"{(ours_t - base) * 1e9 / events:.1f} ns/event over untraced, "
              f"{(ours_t - floor_t) * 1e9 / events:.1f} ns/event over {floor_name}; "
              f"+{ratios['etwtrace'] - ratios[floor_name]:.2f} above the floor; "
              f"reader {decode_events / decode_s / 1e6:.1f} M events/s")
        for name in list(os.listdir(tmp)):
            os.unlink(os.path.join(tmp, name))


if __name__ == "__main__":
    main()
