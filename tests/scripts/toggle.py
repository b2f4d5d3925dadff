"""Stress for the tracer's lifecycle, driven through the API: threads started before enable()
keep running Python while the main thread enables and disables tracing many times, and one
traced function disables tracing from inside itself. Prints one line; exits 0.

With an argument PATH, writes the perf map path of this process to PATH."""
import sys
import threading

import etwtrace

stop = threading.Event()
counts = []


def spin_in_thread(n):
    return n if n < 2 else spin_in_thread(n - 1) + spin_in_thread(n - 2)


def thread_main():
    count = 0
    while not stop.is_set():
        spin_in_thread(12)
        count += 1
    counts.append(count)


def disable_from_inside(tracer):
    tracer.disable()      # frames running through thunks return through them afterwards
    return spin_in_thread(10)


threads = [threading.Thread(target=thread_main) for _ in range(3)]
for t in threads:
    t.start()

tracer = etwtrace.StackSamplingTracer()
for _ in range(200):
    tracer.enable()
    spin_in_thread(8)
    tracer.disable()

tracer.enable()
value = disable_from_inside(tracer)
tracer.enable()
spin_in_thread(15)
stop.set()
for t in threads:
    t.join()
tracer.disable()
if len(sys.argv) > 1:
    import os
    with open(sys.argv[1], "w") as f:
        f.write(f"/tmp/perf-{os.getpid()}.map")
print("toggled", value, len(counts), all(c > 0 for c in counts))
