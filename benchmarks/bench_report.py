"""How long `python -m etwtrace report` takes, and how much memory, on big inputs:

    python benchmarks/bench_report.py [--seconds S] [--threads N] [--calls M] [--keep DIR]
                                      [--skip-stack] [--skip-trace]

stack:  a stack-mode capture of N busy threads for S seconds, sampled at 20 kHz with DWARF
        stacks (perf.data kept). Times `perf script` alone on its perf.data (the floor of any
        reading of it), `report` on the capture as it is (from its events.jsonl.gz, symbolized
        when the capture ended), and `report` on the same capture without the events file
        (so through `perf script` and its Python script): the last is the "report adds X% to
        perf script" figure.
trace:  an instrumented trace of M calls of a tiny function (2 M events) written by
        InstrumentedTracer, then `report` (summary) on it under /usr/bin/time -v: seconds and
        maximum RSS.
progress: whether a report over two seconds shows its status line on a terminal (a pty).

Prints one table; asserts nothing (timings are the machine's). Run it on the interpreter whose
etwtrace is installed.
"""

import argparse
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

PROFILE = textwrap.dedent("""\
    [Bench]
    description = 20 kHz CPU samples with DWARF stacks, perf.data kept (bench_report.py)
    events = cpu-clock
    frequency = 20000
    call_graph = dwarf
    stack_size = 8192
    context_switches = no
    mmap_pages = 16M
    probes = thread, function, mark, stack_sample
    probe_stacks = stack_sample
    keep_perf_data = yes
""")

SPIN = textwrap.dedent("""\
    import sys, threading, time

    def leaf(n):
        x = 0
        for i in range(n):
            x = (x * 31 + i) % 1000003
        return x

    def middle(n):
        return leaf(n) + leaf(n // 2)

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            middle(2000)

    seconds, threads = float(sys.argv[1]), int(sys.argv[2])
    workers = [threading.Thread(target=spin, args=(seconds,)) for _ in range(threads - 1)]
    for w in workers:
        w.start()
    spin(seconds)
    for w in workers:
        w.join()
""")

TRACE = textwrap.dedent("""\
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


def run(command, **kwargs):
    started = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, command))}\n{proc.stderr.decode()[-3000:]}")
    return elapsed, proc


def timed_rss(command):
    """(seconds, max RSS in MB, stdout) of a command under /usr/bin/time -v."""
    elapsed, proc = run(["/usr/bin/time", "-v", *command])
    rss = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return elapsed, int(rss.group(1)) / 1024 if rss else float("nan"), proc.stdout


def shows_progress(command):
    """Whether the command writes its status line when its stderr is a terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.execvp(command[0], command)
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    return b"etwtrace: " in seen and b"\r\x1b[K" in seen


def report_command(path):
    return [sys.executable, "-m", "etwtrace", "report", str(path)]


def bench_stack(work, seconds, threads, rows):
    profile = os.path.join(work, "bench.ini")
    script = os.path.join(work, "spin.py")
    with open(profile, "w") as f:
        f.write(PROFILE)
    with open(script, "w") as f:
        f.write(SPIN)
    capture = os.path.join(work, "stack.etwtrace")
    elapsed, _ = run([sys.executable, "-m", "etwtrace", "--stack", "--capture", capture, "--profile-file", profile,
                      "--capture-profile", "Bench", "--", script, str(seconds), str(threads)])
    import json

    with open(os.path.join(capture, "manifest.json")) as f:
        manifest = json.load(f)
    samples = (manifest.get("perf") or {}).get("samples", 0)
    rows.append(("capture (record + symbolize)", f"{samples:,} samples", elapsed, None))
    perf = shutil.which("perf") or "/usr/bin/perf"
    data = os.path.join(capture, "perf.data")
    if not os.path.exists(data):
        sys.exit("the capture kept no perf.data (keep_perf_data = yes is not honoured?)")
    with open(os.devnull, "wb") as null:
        started = time.perf_counter()
        subprocess.run([perf, "--buildid-dir", os.path.join(capture, "buildid"), "script", "-i", data],
                       stdout=null, stderr=subprocess.DEVNULL, check=True)
        floor = time.perf_counter() - started
    rows.append(("perf script > /dev/null", f"{samples:,} samples", floor, None))
    t, rss, out = timed_rss(report_command(capture))
    read = re.search(rb"health: ([\d,]+) samples", out)
    rows.append(("report (events.jsonl.gz)", f"{read.group(1).decode() if read else '?'} samples", t, rss))
    rows.append(("  vs perf script", f"{100 * (t - floor) / floor:+.0f}%", None, None))
    events = os.path.join(capture, "events.jsonl.gz")
    moved = events + ".aside"
    os.replace(events, moved)
    try:
        t2, rss2, _ = timed_rss(report_command(capture))
        rows.append(("report (perf.data, perf script)", "", t2, rss2))
        rows.append(("  vs perf script", f"{100 * (t2 - floor) / floor:+.0f}%", None, None))
        rows.append(("progress on a terminal (perf.data)", str(shows_progress(report_command(capture))), None, None))
    finally:
        os.replace(moved, events)


def bench_trace(work, calls, rows):
    script = os.path.join(work, "calls.py")
    with open(script, "w") as f:
        f.write(TRACE)
    trace = os.path.join(work, "calls.etwtrace")
    elapsed, _ = run([sys.executable, script, trace, str(calls)])
    from etwtrace import _etwtrace

    events = _etwtrace._trace_aggregate(trace)["info"]["events"]
    size = os.path.getsize(trace) / 1e6
    rows.append(("trace written", f"~{events / 1e6:.0f} M events, {size:,.0f} MB", elapsed, None))
    t, rss, out = timed_rss(report_command(trace))
    if b"tiny" not in out:
        sys.exit("the report of the trace does not show tiny()")
    rows.append(("report (summary) of the trace", f"{events / t / 1e6:.0f} M events/s", t, rss))
    rows.append(("progress on a terminal (trace)", str(shows_progress(report_command(trace))), None, None))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=50_000_000, help="calls in the trace (2 events each)")
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--skip-stack", action="store_true")
    parser.add_argument("--skip-trace", action="store_true")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bench-report-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        if not args.skip_stack:
            bench_stack(work, args.seconds, args.threads, rows)
        if not args.skip_trace:
            bench_trace(work, args.calls, rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':<38} {'size':>28} {'seconds':>9} {'max RSS MB':>11}")
    for what, size, seconds, rss in rows:
        print(f"{what:<38} {size:>28} {'' if seconds is None else f'{seconds:9.2f}':>9} "
              f"{'' if rss is None else f'{rss:11.0f}':>11}")


if __name__ == "__main__":
    main()
