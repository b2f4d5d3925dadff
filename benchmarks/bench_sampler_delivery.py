"""Samples the in-process sampler delivers against those the clock asked for:
python benchmarks/bench_sampler_delivery.py

A CPU-bound loop 30 Python frames deep runs under etwtrace.SamplingTracer, on the main thread
and on a thread started (through `threading`) after enable(); for each row it prints the
sampled thread's CPU time (time.thread_time), the samples that CPU time asks for (CPU time x
rate), those in the trace's SamplerStats record, and those it dropped. One enable/disable per
row, long enough that the partial last period (never a sample) is a small share. Not a timed
test: run it by hand.
"""

import os
import tempfile
import threading
import time

import etwtrace
from etwtrace._read import TraceFile


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def deep(n, seconds):
    if n:
        return deep(n - 1, seconds)
    spin(seconds)


def run(directory, rate, native, seconds, in_new_thread):
    path = os.path.join(directory, f"d-{time.monotonic_ns()}.etwtrace")
    tracer = etwtrace.SamplingTracer(rate=rate, trace_path=path, native=native)
    tracer.enable()
    cpu = []

    def body():
        t0 = time.thread_time()
        deep(30, seconds)
        cpu.append(time.thread_time() - t0)

    if in_new_thread:
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    else:
        body()
    tracer.disable()
    stats = TraceFile(path).sampler
    os.unlink(path)
    return cpu[0], stats


def main():
    directory = tempfile.mkdtemp(prefix="bench-sampler-delivery-")
    print(f"{'rate':>6}  {'run':<28}{'CPU time':>10}{'requested':>11}{'delivered':>11}{'dropped':>9}")
    for rate, native, seconds, in_new_thread in ((100, True, 2.0, False), (1000, True, 1.0, False),
                                                 (1000, False, 1.0, False), (1000, True, 0.2, True),
                                                 (100, True, 0.5, True)):
        cpu, stats = run(directory, rate, native, seconds, in_new_thread)
        name = ("new thread" if in_new_thread else "main thread") + ("" if native else ", native=False")
        print(f"{rate:>6}  {name:<28}{cpu:>8.3f} s{cpu * rate:>11.0f}{stats['samples']:>11}{stats['dropped']:>9}")
    os.rmdir(directory)


if __name__ == "__main__":
    main()
