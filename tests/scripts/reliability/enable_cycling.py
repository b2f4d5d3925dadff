"""Stress for instrumented/stack mode's enable/disable: 12 threads recurse, run generators and
exec() code while the main thread enables and disables tracing CYCLES times; tracing is also
disabled from inside a traced function and from another thread. The output is deterministic
(and the same untraced): per-thread results and the deepest stack of this file's frames and
exec'd "<string>" frames any thread reached ("max_depth N").

Usage: enable_cycling.py MODE [CYCLES]   MODE: instrumented | stack | none
"""
import sys
import threading

MODE = sys.argv[1] if len(sys.argv) > 1 else "none"
CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 600
THREADS = 12
HERE = __file__ if "__file__" in globals() else ""

if MODE != "none":
    import etwtrace

    tracer = (etwtrace.InstrumentedTracer if MODE == "instrumented" else etwtrace.StackSamplingTracer)()
else:
    tracer = None

max_depth = [0]
depth_lock = threading.Lock()
stop = threading.Event()
start_barrier = threading.Barrier(THREADS + 1)


def own_depth():
    f, n = sys._getframe(0), 0  # own_depth itself is on the stack too
    while f is not None:
        if f.f_code.co_filename in (HERE, "<string>"):
            n += 1
        f = f.f_back
    with depth_lock:
        if n > max_depth[0]:
            max_depth[0] = n


def recurse(n, leaf):
    if n == 0:
        return leaf()
    return recurse(n - 1, leaf) + 1


def gen(n):
    for i in range(n):
        yield recurse(i % 7, lambda: i)


EXEC_SOURCE = "def g(k):\n    return recurse(k, leaf)\nresult = g(depth)\n"


def exec_work(depth, leaf):
    ns = {"recurse": recurse, "leaf": leaf, "depth": depth}
    exec(EXEC_SOURCE, ns)
    return ns["result"]


def worker(index, results):
    total = 0
    rounds = 0
    start_barrier.wait()
    while not stop.is_set() or rounds < 20:
        depth = 20 + (index * 7 + rounds) % 40
        total += recurse(depth, lambda: 1)
        total += sum(gen(10))
        total += exec_work(depth % 25, lambda: 2)
        if rounds % 50 == 0:
            total += recurse(58, lambda: own_depth() or 0)
        rounds += 1
    # The number of rounds depends on timing; the checksum of a fixed number does not.
    results[index] = (total > 0, recurse(10, lambda: 3))


def disable_from_inside():
    tracer.disable()
    return recurse(5, lambda: 4)


def disabler():
    tracer.disable()


def main():
    results = [None] * THREADS
    threads = [threading.Thread(target=worker, args=(i, results)) for i in range(THREADS)]
    for t in threads:
        t.start()
    start_barrier.wait()
    checks = 0
    for cycle in range(CYCLES):
        if tracer is not None:
            tracer.enable()
        checks += recurse(cycle % 30, lambda: 1)
        if tracer is not None:
            if cycle % 10 == 3:
                checks += disable_from_inside()
                continue
            if cycle % 10 == 7:
                t = threading.Thread(target=disabler)
                t.start()
                t.join()
                continue
            tracer.disable()
        else:
            if cycle % 10 == 3:
                checks += recurse(5, lambda: 4)
    stop.set()
    for t in threads:
        t.join()
    own_depth()
    print("checks", checks)
    for i, r in enumerate(results):
        print("thread", i, r)
    print("max_depth", max_depth[0])


main()
