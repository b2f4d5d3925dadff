"""Runs one benchmark workload and writes its timing as JSON (the runner's child; run.py):

    python benchmarks/workload.py NAME SCALE RESULT_JSON [--fib N] [--load-etwtrace]

RESULT_JSON gets {"elapsed": s, "start" and "end": CLOCK_MONOTONIC at the start and the end of
the work, "pid", "maxrss_kb", "cpu": the process's CPU seconds so far, all threads, "work_cpu":
those of the work alone, "program_cpu": those of the program's own threads during the work (the
main thread and every `threading` thread, not a tool's helper threads: what a CPU-time
sampler is asked to sample)}.
The work is timed inside the process, so tool start-up and post-processing are not in
"elapsed"; the runner measures them from the outside. --fib N runs fib(N) exactly (callgrind
runs); --load-etwtrace imports etwtrace's native module first and never enables it (the cost
of the extension being loaded but idle).
"""

import importlib
import json
import os
import resource
import sys
import threading
import time

# CPU seconds of the `threading` threads that ended, each measured by itself as it ends.
_ended_threads_cpu = []


def _count_thread_cpu():
    run = threading.Thread.run

    def measured_run(self):
        try:
            run(self)
        finally:
            _ended_threads_cpu.append(time.thread_time())

    threading.Thread.run = measured_run


def main(argv):
    name, scale, result = argv[0], float(argv[1]), argv[2]
    if "--load-etwtrace" in argv:
        import etwtrace  # noqa: F401
        from etwtrace import _etwtrace  # noqa: F401
    _count_thread_cpu()
    module = importlib.import_module(f"workloads.{name}")
    start = time.clock_gettime(time.CLOCK_MONOTONIC)
    started, cpu_started, main_started = time.perf_counter(), time.process_time(), time.thread_time()
    if "--fib" in argv:
        module.fib(int(argv[argv.index("--fib") + 1]))
    else:
        module.run(scale)
    elapsed, work_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    program_cpu = time.thread_time() - main_started + sum(_ended_threads_cpu)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {"elapsed": elapsed, "start": start, "end": time.clock_gettime(time.CLOCK_MONOTONIC),
              "pid": os.getpid(), "maxrss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
              "work_cpu": work_cpu, "program_cpu": program_cpu}
    fd = os.open(result, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
