"""Threads recurse, run generators and exec() code while the main thread disables and
re-enables the launcher's tracer; disable() is also called from inside a traced function and
from another thread, and threads start and end during the cycling (thread states are reused).
Untraced there is no tracer: the same work runs, and the output is the same."""
import sys
import threading

import etwtrace
from _scale import scale

CYCLES = scale(25, 2000)
THREADS = 4
tracer = etwtrace._tracer  # the launcher's, or None untraced
stop = threading.Event()


def recurse(n):
    return 1 if n == 0 else recurse(n - 1) + 1


def gen(n):
    for i in range(n):
        yield recurse(i % 7)


def worker(index, results):
    total = rounds = 0
    while not stop.is_set() or rounds < 20:
        total += recurse(10 + (index + rounds) % 30) + sum(gen(8))
        ns = {"recurse": recurse}
        exec("def g(k):\n    return recurse(k)\nr = g(5)\n", ns)
        total += ns["r"]
        rounds += 1
    results[index] = recurse(index)


def disable_from_inside():
    tracer.disable()
    return recurse(4)


def main():
    results = [None] * THREADS
    threads = [threading.Thread(target=worker, args=(i, results)) for i in range(THREADS)]
    for t in threads:
        t.start()
    checks = 0
    for cycle in range(CYCLES):
        if tracer is not None:
            if cycle % 5 == 1:
                checks += disable_from_inside()
            elif cycle % 5 == 2:
                t = threading.Thread(target=tracer.disable)
                t.start()
                t.join()
                checks += 4
            else:
                tracer.disable()
                checks += 4
        else:
            checks += recurse(4) if cycle % 5 == 1 else 4
        # short-lived threads while the tracer is off and when it comes back
        short = threading.Thread(target=recurse, args=(3,))
        short.start()
        if tracer is not None:
            tracer.enable()
        short.join()
        checks += recurse(cycle % 20)
    stop.set()
    for t in threads:
        t.join()
    print("checks", checks)
    print("results", results)


main()
