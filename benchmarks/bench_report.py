"""How long `python -m etwtrace report` takes, and how much memory, on big inputs:

    python benchmarks/bench_report.py [--seconds S] [--threads N] [--calls M] [--keep DIR [--reuse]]
                                      [--skip-stack] [--skip-trace]

stack:  a stack-mode capture of N busy threads for S CPU seconds each, sampled at 20 kHz with
        DWARF stacks (perf.data kept): about 20,000 * N * S samples (--threads 4 --seconds 12.5:
        1 M). Times `perf script` alone on its perf.data (the floor of any reading of it),
        `report` on the capture as it is (from its events.jsonl.gz, symbolized when the capture
        ended), and `report` on the same capture without the events file (so through
        `perf script` and its Python script, streamed): the "report adds X% to perf script"
        figures, in wall and in CPU seconds (user + system, perf's included).
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from suite.commands import CALLS_TRACE, Timed, run, timed_rss  # noqa: E402

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
        # CPU seconds of this thread, not wall seconds: the number of samples (20 kHz of
        # CPU time) is then the same on a loaded machine.
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            middle(2000)

    seconds, threads = float(sys.argv[1]), int(sys.argv[2])
    workers = [threading.Thread(target=spin, args=(seconds,)) for _ in range(threads - 1)]
    for w in workers:
        w.start()
    spin(seconds)
    for w in workers:
        w.join()
""")

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


def bench_stack(work, seconds, threads, rows, reuse=False):
    profile = os.path.join(work, "bench.ini")
    script = os.path.join(work, "spin.py")
    with open(profile, "w") as f:
        f.write(PROFILE)
    with open(script, "w") as f:
        f.write(SPIN)
    capture = os.path.join(work, "stack.etwtrace")
    if not (reuse and os.path.exists(os.path.join(capture, "manifest.json"))):
        timed, _ = run([sys.executable, "-m", "etwtrace", "--stack", "--capture", capture, "--profile-file", profile,
                        "--capture-profile", "Bench", "--", script, str(seconds), str(threads)])
    else:
        timed = None
    import json

    with open(os.path.join(capture, "manifest.json")) as f:
        manifest = json.load(f)
    samples = (manifest.get("perf") or {}).get("samples", 0)
    timings = manifest.get("timings") or {}
    rows.append(("capture (record + symbolize)", f"{samples:,} samples", timed, None))
    if timings.get("symbolize_s"):
        rows.append(("  of which symbolize (perf script -s)", f"{timings['symbolize_s']:.1f} s wall", None, None))
    perf = shutil.which("perf") or "/usr/bin/perf"
    data = os.path.join(capture, "perf.data")
    if not os.path.exists(data):
        sys.exit("the capture kept no perf.data (keep_perf_data = yes is not honoured?)")
    with open(os.devnull, "wb") as null, Timed() as floor:
        subprocess.run([perf, "--buildid-dir", os.path.join(capture, "buildid"), "script", "-i", data],
                       stdout=null, stderr=subprocess.DEVNULL, check=True)
    rows.append(("perf script > /dev/null", f"{samples:,} samples", floor, None))

    def versus(t):
        return (f"wall {100 * (t.wall - floor.wall) / floor.wall:+.0f}%, "
                f"CPU {100 * (t.cpu - floor.cpu) / floor.cpu:+.0f}%")

    t, rss, out = timed_rss(report_command(capture))
    read = re.search(rb"health: ([\d,]+) samples", out)
    rows.append(("report (events.jsonl.gz)", f"{read.group(1).decode() if read else '?'} samples", t, rss))
    rows.append(("  vs perf script", versus(t), None, None))
    events = os.path.join(capture, "events.jsonl.gz")
    moved = events + ".aside"
    os.replace(events, moved)
    try:
        t2, rss2, _ = timed_rss(report_command(capture))
        rows.append(("report (perf.data only, perf script)", "", t2, rss2))
        rows.append(("  vs perf script", versus(t2), None, None))
        rows.append(("progress on a terminal (perf.data)", str(shows_progress(report_command(capture))), None, None))
    finally:
        os.replace(moved, events)


def bench_trace(work, calls, rows):
    script = os.path.join(work, "calls.py")
    with open(script, "w") as f:
        f.write(CALLS_TRACE)
    trace = os.path.join(work, "calls.etwtrace")
    timed, _ = run([sys.executable, script, trace, str(calls)])
    from etwtrace import _etwtrace

    events = _etwtrace._trace_aggregate(trace)["info"]["events"]
    size = os.path.getsize(trace) / 1e6
    rows.append(("trace written", f"~{events / 1e6:.0f} M events, {size:,.0f} MB", timed, None))
    t, rss, out = timed_rss(report_command(trace))
    if b"tiny" not in out:
        sys.exit("the report of the trace does not show tiny()")
    rows.append(("report (summary) of the trace", f"{events / t.wall / 1e6:.0f} M events/s", t, rss))
    rows.append(("progress on a terminal (trace)", str(shows_progress(report_command(trace))), None, None))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="CPU seconds of each thread")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=50_000_000, help="calls in the trace (2 events each)")
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--reuse", action="store_true", help="with --keep: time the capture already there")
    parser.add_argument("--skip-stack", action="store_true")
    parser.add_argument("--skip-trace", action="store_true")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bench-report-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        if not args.skip_stack:
            bench_stack(work, args.seconds, args.threads, rows, args.reuse)
        if not args.skip_trace:
            bench_trace(work, args.calls, rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':<38} {'':>28} {'wall s':>8} {'CPU s':>8} {'max RSS MB':>11}")
    for what, size, timed, rss in rows:
        print(f"{what:<38} {size:>28} {'' if timed is None else f'{timed.wall:8.2f}':>8} "
              f"{'' if timed is None else f'{timed.cpu:8.2f}':>8} {'' if rss is None else f'{rss:11.0f}':>11}")


if __name__ == "__main__":
    main()
