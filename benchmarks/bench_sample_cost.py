"""Cost of one sample of the in-process sampler: python benchmarks/bench_sample_cost.py [--repeat N]

A fixed CPU-bound function (recursive to a Python depth of about 40, so both unwinders have
work) runs untraced and under etwtrace.SamplingTracer at 5 kHz with and without native
unwinding, interleaved. The cost of one sample is the extra thread CPU time over the samples
taken (the signal delivery, the perf re-arm, the Python frame walk and the ring write; plus the
native unwind for native=True, so the difference of the two rows is libunwind's share). It
also prints the samples delivered against those the thread's CPU time asked for. Not a timed
test: run it by hand.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import etwtrace
from etwtrace._read import TraceFile


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work(depth=20):
    if depth:
        return work(depth - 1)
    return fib(26)


def run(native, rate, directory):
    path = os.path.join(directory, f"c-{time.monotonic_ns()}.etwtrace")
    tracer = None
    if native is not None:
        tracer = etwtrace.SamplingTracer(rate=rate, trace_path=path, native=native)
        tracer.enable()
    t0 = time.thread_time()
    for _ in range(5):
        work()
    cpu = time.thread_time() - t0
    samples = 0
    if tracer:
        tracer.disable()
        samples = TraceFile(path).sampler["samples"]
        os.unlink(path)
    return cpu, samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rate", type=int, default=5000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-sample-cost-")
    rows = {"untraced": None, "python frames only (native=False)": False, "python + native (default)": True}
    cpu = {k: [] for k in rows}
    samples = {k: [] for k in rows}
    for _ in range(args.repeat):
        for name, native in rows.items():
            c, s = run(native, args.rate, directory)
            cpu[name].append(c)
            samples[name].append(s)
    os.rmdir(directory)
    base = statistics.median(cpu["untraced"])
    print(f"CPython {sys.version.split()[0]}: {args.rate} Hz, median of {args.repeat}, thread CPU time")
    print(f"{'configuration':<36}{'cpu':>10}{'samples':>9}{'delivered':>11}{'us/sample':>11}")
    for name in rows:
        c = statistics.median(cpu[name])
        s = statistics.median(samples[name])
        if rows[name] is None:
            print(f"{name:<36}{c * 1000:>8.1f}ms")
            continue
        delivered = s / (c * args.rate) * 100
        print(f"{name:<36}{c * 1000:>8.1f}ms{s:>9.0f}{delivered:>10.1f}%{(c - base) / s * 1e6:>11.1f}")


if __name__ == "__main__":
    main()
