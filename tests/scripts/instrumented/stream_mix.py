"""A trace with a bit of everything, for the streaming reader's tests: threads running at the
same time, recursion, C calls, generators, marks, ranges and stack samples.

    python stream_mix.py TRACE_PATH [CALLS]
"""

import sys
import threading
import zlib

import etwtrace


def leaf(i):
    return zlib.crc32(b"x" * (i % 7))


def recurse(n):
    return leaf(n) if n == 0 else recurse(n - 1) + 1


def numbers(n):
    for i in range(n):
        yield leaf(i)


def work(calls, name):
    with etwtrace.mark_range(f"work {name}"):
        for i in range(calls):
            recurse(i % 9)
            if i % 1000 == 0:
                etwtrace.mark(f"{name} {i}")
                etwtrace._mark_stack(f"sample {name}")
        sum(numbers(50))


def main():
    path, calls = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    tracer = etwtrace.InstrumentedTracer(trace_path=path)
    tracer.enable()
    threads = [threading.Thread(target=work, args=(calls, f"t{i}")) for i in range(3)]
    for t in threads:
        t.start()
    work(calls, "main")
    for t in threads:
        t.join()
    tracer.disable()


if __name__ == "__main__":
    main()
