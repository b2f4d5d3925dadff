"""Overhead of the in-process sampler, per CPython: python benchmarks/bench_sampler.py [--repeat N]

In one process, interleaved so that drift hits every configuration alike, the workloads of
bench_stack.py (fib(30), the call-heavy worst case, and its realistic set) run:

  untraced     plain interpreter
  sampler      etwtrace.SamplingTracer at its default rate (100 per second of CPU time)
  sampler 1k   etwtrace.SamplingTracer(rate=1000)
  stack        etwtrace.StackSamplingTracer (PEP 523 hook: the floor the sampler avoids)
  -X perf      CPython's perf trampoline (sys.activate_stack_trampoline, 3.12+)

and, in a child process each (startup excluded: the child times its own workloads),
`py-spy record --native` at 100 and 1000 samples per second against the same child untraced,
when py-spy is on PATH (or beside this interpreter). It prints the median time of each and the
ratio to untraced (in-process configurations in CPU time of the whole process, time.process_time:
the sampler's drain and writer threads included, and robust to a loaded machine where wall time
is not; py-spy's child in wall time, py-spy's own CPU being another process's), the cost of one sample (the 1 kHz sampler's extra time over its samples) and
the samples delivered against those its CPU time asked for. Not a timed test: run it by hand.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stack import WORKLOADS  # noqa: E402

import etwtrace  # noqa: E402
from etwtrace._read import TraceFile  # noqa: E402


class Sampler:
    def __init__(self, rate, directory):
        self.rate = rate
        self.directory = directory
        self.samples = 0
        self.expected = 0.0

    def __enter__(self):
        self.path = os.path.join(self.directory, f"s-{time.monotonic_ns()}.etwtrace")
        self.tracer = etwtrace.SamplingTracer(rate=self.rate, trace_path=self.path)
        self.cpu = time.thread_time()
        self.tracer.enable()

    def __exit__(self, *exc):
        self.tracer.disable()
        cpu = time.thread_time() - self.cpu
        stats = TraceFile(self.path).sampler
        self.samples += stats["samples"]
        self.expected += cpu * self.rate
        os.unlink(self.path)


class Stack:
    def __enter__(self):
        self.tracer = etwtrace.StackSamplingTracer()
        self.tracer.enable()

    def __exit__(self, *exc):
        self.tracer.disable()


class PerfTrampoline:
    def __enter__(self):
        sys.activate_stack_trampoline("perf")

    def __exit__(self, *exc):
        sys.deactivate_stack_trampoline()


class Untraced:
    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


def time_workloads(configs, repeat, clock=time.process_time):
    times = {(c, w): [] for c in configs for w in WORKLOADS}
    for _ in range(repeat):
        for wname, work in WORKLOADS.items():
            for cname, config in configs.items():
                with config:
                    t0 = clock()
                    work()
                    times[(cname, wname)].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def child(repeat, out):
    """The py-spy comparison's child: times each workload itself, writes JSON to `out`."""
    with open(out, "w") as f:
        json.dump({w: t for (_c, w), t in time_workloads({"child": Untraced()}, repeat, time.perf_counter).items()},
                  f)


def py_spy():
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.path.exists(here) else shutil.which("py-spy")


def run_child(prefix, repeat, directory):
    out = os.path.join(directory, "child.json")
    subprocess.run([*prefix, sys.executable, os.path.abspath(__file__), "--child", out, "--repeat", str(repeat)],
                   capture_output=True, text=True, check=True)
    with open(out) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.repeat, args.child)
        return
    directory = tempfile.mkdtemp(prefix="bench-sampler-")
    os.environ.setdefault("JITDUMPDIR", directory)
    sampler, sampler_1k = Sampler(100, directory), Sampler(1000, directory)
    configs = {"untraced": Untraced(), "sampler": sampler, "sampler 1k": sampler_1k, "stack": Stack()}
    if hasattr(sys, "activate_stack_trampoline"):
        configs["-X perf"] = PerfTrampoline()
    results = time_workloads(configs, args.repeat)
    spy = py_spy()
    columns = list(configs)
    if spy:
        base = run_child([], args.repeat, directory)
        for rate in (100, 1000):
            spied = run_child([spy, "record", "--native", "-r", str(rate), "-o", os.devnull, "-f", "raw", "--"],
                              args.repeat, directory)
            for w in WORKLOADS:
                results[(f"py-spy {rate}", w)] = spied[w] / base[w] * results[("untraced", w)]
            columns.append(f"py-spy {rate}")
    shutil.rmtree(directory, ignore_errors=True)

    print(f"CPython {sys.version.split()[0]}: median of {args.repeat}, ratio to untraced in process CPU time "
          f"(py-spy: wall time of its child against the same child untraced)")
    print(f"{'workload':<12}{'untraced':>10}" + "".join(f"{c:>12}" for c in columns[1:]))
    for w in WORKLOADS:
        base = results[("untraced", w)]
        row = f"{w:<12}{base * 1000:>8.1f}ms"
        row += "".join(f"{results[(c, w)] / base:>11.3f}x" for c in columns[1:])
        print(row)
    extra = sum(results[("sampler 1k", w)] - results[("untraced", w)] for w in WORKLOADS)
    per_run = sampler_1k.samples / (args.repeat or 1)
    print(f"one sample costs ~{extra / per_run * 1e6:.1f} us (1 kHz sampler's extra time over its "
          f"{per_run:.0f} samples per round)" if per_run else "no samples")
    for s in (sampler, sampler_1k):
        print(f"samples delivered at {s.rate} Hz: {s.samples} of {s.expected:.0f} requested by the CPU time "
              f"({s.samples / s.expected * 100:.1f}%)")


if __name__ == "__main__":
    main()
