"""What this machine's kernel charges the sampler, without Python: python benchmarks/bench_platform.py [--repeat N]

Compiles benchmarks/platform/timer_costs.c (cc -O2) and runs, interleaved, the median of N:

  signal   a CPU-bound loop (registers only, then 64 MB of random memory accesses) untraced
           and under a 1 kHz perf task-clock whose overflow is a signal re-armed as the
           sampler re-arms it: the cost of one delivery in thread CPU time (us per signal)
  switch   two threads passing a byte through pipes (two context switches per round trip),
           on one CPU and across two, with no event, a counting task-clock, and a sampling
           task-clock at 10 ms and 1 ms periods on both threads: what each switch costs more

These are the floor of the in-process sampler here: no sampler of this design pays less per
sample or per switch. Not a timed test: run it by hand (docs/sampler.md quotes a run).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "platform", "timer_costs.c")


def build(directory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        sys.exit("bench_platform: no C compiler (cc) on PATH; install build-essential")
    binary = os.path.join(directory, "timer_costs")
    subprocess.run([compiler, "-O2", "-pthread", "-o", binary, SOURCE], check=True)
    return binary


def run(binary, *args):
    out = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, check=True).stdout.split()
    return [float(x) for x in out]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-platform-") as directory:
        binary = build(directory)
        signal_rows = {}
        for loop in ("compute", "memory"):
            plain, traced, per_signal = [], [], []
            for _ in range(args.repeat):
                plain.append(run(binary, "signal", 0, loop)[0])
                cpu, signals, _ = run(binary, "signal", 1000000, loop)
                traced.append(cpu)
                per_signal.append((cpu, signals))
            base = statistics.median(plain)
            costs = [(cpu - base) / signals * 1e6 for cpu, signals in per_signal if signals]
            signal_rows[loop] = (base, statistics.median(traced), statistics.median(costs))
        switch_rows = {}
        periods = [("no event", 0), ("counting task-clock", -1), ("task-clock, 10 ms", 10000000),
                   ("task-clock, 1 ms", 1000000)]
        for cpus in (1, 2):
            times = {name: [] for name, _ in periods}
            for _ in range(args.repeat):
                for name, period in periods:
                    times[name].append(run(binary, "switch", period, cpus)[0])
            switch_rows[cpus] = {name: statistics.median(v) for name, v in times.items()}
    print(f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs: median of {args.repeat}")
    print()
    print("One perf task-clock overflow delivered as a signal, 1 kHz (thread CPU time):")
    print(f"{'loop':10} {'untraced':>10} {'1 kHz':>10} {'us per signal':>14}")
    for loop, (base, traced, cost) in signal_rows.items():
        print(f"{loop:10} {base:9.3f}s {traced:9.3f}s {cost:14.1f}")
    print()
    print("A context switch (pipe round trip = 2 switches), us per round trip and more per switch:")
    print(f"{'event on both threads':24} {'1 CPU':>8} {'+/switch':>9} {'2 CPUs':>8} {'+/switch':>9}")
    for name, _ in periods:
        one, two = switch_rows[1][name], switch_rows[2][name]
        more_one = (one - switch_rows[1]["no event"]) / 2
        more_two = (two - switch_rows[2]["no event"]) / 2
        print(f"{name:24} {one:8.2f} {more_one:+9.2f} {two:8.2f} {more_two:+9.2f}")


if __name__ == "__main__":
    main()
