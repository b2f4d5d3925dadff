"""Overhead of stack sampling mode, per CPython: python benchmarks/bench_stack.py [--python PY ...]

For each interpreter (default: the one running this script; pass --python several times, each
with etwtrace installed, to compare versions side by side), it runs in one process, interleaved
so that drift hits every configuration alike:

  untraced   plain interpreter
  floor      a PEP 523 hook that only calls the default evaluator (_etwtrace._bench_noop_hook):
             the cost any eval-frame hook pays (3.11+ stops inlining Python-to-Python calls)
  ours       etwtrace.StackSamplingTracer (thunks, perf map, jitdump)
  -X perf    CPython's own perf trampoline (sys.activate_stack_trampoline, 3.12+)

and prints the median time of each and the ratios. Workloads: fib(30) (call-heavy, the
worst case) and a small realistic set (object-oriented scheduler, n-body, JSON round trip,
generator pipeline, recursive tree building, regex tokenizing). Not a timed test: run it by
hand; keep --repeat small on a shared machine.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from workloads import nbody, objects, regex
from workloads.fib import fib


# ---- workloads --------------------------------------------------------------------------------
# Built from the suite's workloads (benchmarks/workloads/), at the sizes this table has always used.


def w_fib():
    fib(30)


class Task:
    def __init__(self, ident, work):
        self.ident = ident
        self.work = work
        self.done = 0

    def step(self, scheduler):
        self.done += 1
        if self.done < self.work:
            scheduler.enqueue(self)
        return self.done


class Scheduler:
    def __init__(self):
        self.queue = []
        self.steps = 0

    def enqueue(self, task):
        self.queue.append(task)

    def run(self):
        while self.queue:
            batch, self.queue = self.queue, []
            for task in batch:
                self.steps += task.step(self) & 1
        return self.steps


def w_scheduler():
    s = Scheduler()
    for i in range(400):
        s.enqueue(Task(i, 200 + i % 7))
    s.run()


def w_nbody():
    nbody.run(2.0)  # 12,000 steps


def w_json():
    doc = {"items": [{"id": i, "name": f"item{i}", "tags": ["a", "b", str(i)], "price": i * 1.5} for i in range(300)]}
    for _ in range(60):
        json.loads(json.dumps(doc))


def w_generators():
    def numbers(n):
        for i in range(n):
            yield i

    def squares(it):
        for x in it:
            yield x * x

    def evens(it):
        return (x for x in it if x % 2 == 0)

    total = 0
    for _ in range(10):
        total += sum(evens(squares(numbers(40000))))


def w_tree():
    for _ in range(4):
        objects.make_tree(14).count()


def w_regex():
    text = "alpha = beta * 42 + gamma(7, delta) - 3 / epsilon; " * 200
    for _ in range(15):
        regex.tokenize(text)


WORKLOADS = {
    "fib(30)": w_fib,
    "scheduler": w_scheduler,
    "nbody": w_nbody,
    "json": w_json,
    "generators": w_generators,
    "tree": w_tree,
    "regex": w_regex,
}


# ---- configurations -------------------------------------------------------------------------

class Untraced:
    name = "untraced"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Floor:
    name = "floor"

    def __enter__(self):
        from etwtrace import _etwtrace

        _etwtrace._bench_noop_hook(True)

    def __exit__(self, *exc):
        from etwtrace import _etwtrace

        _etwtrace._bench_noop_hook(False)


class Ours:
    name = "ours"

    def __init__(self):
        import etwtrace

        self.tracer = etwtrace.StackSamplingTracer()

    def __enter__(self):
        self.tracer.enable()

    def __exit__(self, *exc):
        self.tracer.disable()


class XPerf:
    name = "-X perf"

    def __enter__(self):
        sys.activate_stack_trampoline("perf")

    def __exit__(self, *exc):
        sys.deactivate_stack_trampoline()


def measure(repeat, only, stat=statistics.median):
    configs = [Untraced(), Floor(), Ours()]
    if hasattr(sys, "activate_stack_trampoline"):
        try:
            sys.activate_stack_trampoline("perf")
            sys.deactivate_stack_trampoline()
            configs.append(XPerf())
        except (ValueError, OSError):
            pass
    results = {}
    for wname, work in WORKLOADS.items():
        if only and wname not in only:
            continue
        work()  # warm up (imports, specialisation, thunk publishing)
        times = {c.name: [] for c in configs}
        for config in configs:
            with config:
                work()
        for _ in range(repeat):
            for config in configs:
                with config:
                    t0 = time.perf_counter()
                    work()
                    times[config.name].append(time.perf_counter() - t0)
        results[wname] = {name: stat(values) for name, values in times.items()}
    return results


def count_child(mode, n):
    """Runs fib(n) once under `mode` (for valgrind): untraced, floor or ours."""
    config = {"untraced": Untraced, "floor": Floor, "ours": Ours, "xperf": XPerf}[mode]()
    fib(12)
    with config:
        fib(n)


def instructions(python):
    """Instructions per Python call of fib, by callgrind: deterministic, immune to machine load.

    Counts fib(20) and fib(24) and divides the difference by the difference in calls, which
    cancels start-up and enable() costs."""
    calls = {n: 2 * _fib_plain(n + 1) - 1 for n in (20, 24)}
    per_call = {}
    modes = ["untraced", "floor", "ours"]
    probe = subprocess.run([python, "-c", "import sys; print(hasattr(sys, 'activate_stack_trampoline'))"],
                           capture_output=True, text=True)
    if probe.stdout.strip() == "True":
        modes.append("xperf")
    for mode in modes:
        totals = {}
        for n in (20, 24):
            proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python,
                                   os.path.abspath(__file__), "--count", mode, str(n)],
                                  capture_output=True, text=True)
            m = re.search(r"Collected : (\d+)", proc.stderr)
            if not m:
                raise RuntimeError(f"valgrind failed: {proc.stderr[-500:]}")
            totals[n] = int(m.group(1))
        per_call[mode] = (totals[24] - totals[20]) / (calls[24] - calls[20])
    return per_call


def memory_child(count=20000):
    """Heap and thunk memory per traced function: `count` generated functions, each called once
    while tracing; heap from glibc's mallinfo2 (our records are malloc'd, Python's objects are
    not), thunk memory from the arena (physical, and address space)."""
    import ctypes

    import etwtrace

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    source = "\n".join(f"def generated_function_{i}(): return {i}" for i in range(count))
    namespace = {}
    exec(compile(source, os.path.abspath(__file__) + "-generated.py", "exec"), namespace)
    functions = [namespace[f"generated_function_{i}"] for i in range(count)]
    tracer = etwtrace.StackSamplingTracer()
    with tracer:
        functions[0]()
        before = libc.mallinfo2().uordblks
        for function in functions[1:]:
            function()
        heap = libc.mallinfo2().uordblks - before
        info = dict(item for item in tracer._get_technical_info() if isinstance(item, tuple))
    return {"functions": count - 1, "heap_per_function": heap / (count - 1),
            "thunk_memory": info["thunk_memory"], "thunk_address_space": info["thunk_address_space"],
            "thunk_bytes": info["thunk_bytes"]}


def _fib_plain(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def cleanup_symbol_files():
    pid = os.getpid()
    for path in (f"/tmp/perf-{pid}.map", os.path.join(os.environ.get("JITDUMPDIR") or "/tmp", f"jit-{pid}.dump")):
        try:
            os.unlink(path)
        except OSError:
            pass


def print_table(version, results, stat="median"):
    print(f"\nCPython {version}  ({stat} seconds; ratios to untraced unless stated)")
    header = f"{'workload':<12}{'untraced':>10}{'floor':>8}{'ours':>8}{'-X perf':>9}{'ours/-X perf':>14}"
    print(header)
    print("-" * len(header))
    for wname, r in results.items():
        base = r["untraced"]
        xperf = r.get("-X perf")
        xperf_ratio = "%.2f" % (xperf / base) if xperf else "n/a"
        ours_to_xperf = "%.2f" % (r["ours"] / xperf) if xperf else "n/a"
        print(f"{wname:<12}{base:>10.4f}{r['floor'] / base:>8.2f}{r['ours'] / base:>8.2f}"
              f"{xperf_ratio:>9}{ours_to_xperf:>14}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter to benchmark (repeatable)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per configuration (default 5)")
    parser.add_argument("--only", action="append", help="run only this workload (repeatable)")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic of the timed runs (min is steadier on a loaded machine)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per fib call with valgrind (steady on a loaded machine)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure memory per traced function (heap, thunk memory, address space)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", nargs=2, help=argparse.SUPPRESS)  # valgrind child mode
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()

    if args.count:
        try:
            count_child(args.count[0], int(args.count[1]))
        finally:
            cleanup_symbol_files()
        return 0

    if args.memory_child:
        try:
            print(json.dumps(memory_child()))
        finally:
            cleanup_symbol_files()
        return 0

    if args.json:
        try:
            results = measure(args.repeat, args.only, statistics.median if args.stat == "median" else min)
        finally:
            cleanup_symbol_files()
        print(json.dumps({"version": sys.version.split()[0], "results": results}))
        return 0

    pythons = args.python or [sys.executable]
    for python in pythons:
        cmd = [python, os.path.abspath(__file__), "--json", "--repeat", str(args.repeat), "--stat", args.stat]
        for w in args.only or []:
            cmd += ["--only", w]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"\n{python}: failed\n{proc.stderr}", file=sys.stderr)
            continue
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        print_table(data["version"], data["results"], args.stat)
        if args.instructions:
            per_call = instructions(python)
            base = per_call["untraced"]
            print(f"instructions per fib call: untraced {base:.0f}, floor {per_call['floor']:.0f} "
                  f"({per_call['floor'] / base:.3f}), ours {per_call['ours']:.0f} ({per_call['ours'] / base:.3f}); "
                  f"ours - floor = {per_call['ours'] - per_call['floor']:.1f}"
                  + (f"; -X perf {per_call['xperf']:.0f} (ours/-X perf {per_call['ours'] / per_call['xperf']:.3f})"
                     if "xperf" in per_call else ""))
        if args.memory:
            proc = subprocess.run([python, os.path.abspath(__file__), "--memory-child"], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"memory: failed\n{proc.stderr}", file=sys.stderr)
                continue
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            n = m["functions"]
            print(f"memory per traced function ({n} functions): heap {m['heap_per_function']:.0f} bytes; "
                  f"thunk {m['thunk_memory'] / n:.1f} bytes physical ({m['thunk_memory'] // 1024} KiB in all), "
                  f"{m['thunk_bytes']} bytes of address space")
    return 0


if __name__ == "__main__":
    sys.exit(main())
