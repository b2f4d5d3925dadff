"""How fast `etwtrace.read()` streams an instrumented trace, and how much memory it takes:

    python benchmarks/bench_reader.py [--events 4,20] [--keep DIR] [--dump]

For each size (millions of events) a trace of a loop of tiny calls (2 events per call) is
written by InstrumentedTracer (kept in DIR with --keep, and reused from there when present),
then a child interpreter runs `for e in etwtrace.read(path): pass` under /usr/bin/time -v:
its CPU seconds (user + system: the wall clock of a shared machine measures the neighbours),
events per CPU second and maximum RSS. A second child also touches every event's
name, timestamp, thread, fields and stack (what a consumer does), and with --dump
`python -m etwtrace dump` prints the trace to /dev/null.

Prints one table; asserts nothing (timings are the machine's). Run it on the interpreter whose
etwtrace is installed.
"""

import argparse
import os
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from suite.commands import CALLS_TRACE, run, timed_rss  # noqa: E402

ITERATE = "import sys, etwtrace\nn = 0\nfor e in etwtrace.read(sys.argv[1]):\n    n += 1\nprint(n)\n"
TOUCH = textwrap.dedent("""\
    import sys, etwtrace
    n = 0
    for e in etwtrace.read(sys.argv[1]):
        e.name, e.timestamp, e.thread_id, e.fields, e.stack
        n += 1
    print(n)
""")


def write_trace(work, millions):
    path = os.path.join(work, f"calls-{millions}M.etwtrace")
    if not os.path.exists(path):
        script = os.path.join(work, "calls.py")
        with open(script, "w") as f:
            f.write(CALLS_TRACE)
        run([sys.executable, script, path, str(millions * 1_000_000 // 2)])
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="4,20", help="trace sizes in millions of events, comma-separated")
    parser.add_argument("--keep", help="write the traces in this directory and keep them")
    parser.add_argument("--dump", action="store_true", help="also time `python -m etwtrace dump > /dev/null`")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bench-reader-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        for millions in (int(m) for m in args.events.split(",")):
            trace = write_trace(work, millions)
            size = os.path.getsize(trace) / 1e6
            for label, code in (("read(): for e in ...: pass", ITERATE), ("read(): every attribute", TOUCH)):
                timed, rss, out = timed_rss([sys.executable, "-c", code, trace])
                t = timed.cpu  # CPU, not wall: on a shared machine the wall clock measures the neighbours
                events = int(out.split()[-1])
                rows.append((f"{millions} M events ({size:.0f} MB)", label, events, t, rss))
            if args.dump:
                timed, rss, _ = timed_rss(["sh", "-c", '"$0" -m etwtrace dump "$1" > /dev/null', sys.executable, trace])
                t = timed.cpu
                rows.append((f"{millions} M events ({size:.0f} MB)", "dump > /dev/null", events, t, rss))
    finally:
        if not args.keep:
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            os.rmdir(work)
    print(f"etwtrace.read() on {sys.version.split()[0]}")
    print(f"{'trace':<22} {'what':<28} {'events':>12} {'CPU s':>8} {'M events/s':>11} {'max RSS MB':>11}")
    for trace, what, events, seconds, rss in rows:
        print(f"{trace:<22} {what:<28} {events:>12,} {seconds:>8.2f} {events / seconds / 1e6:>11.2f} {rss:>11.0f}")


if __name__ == "__main__":
    main()
