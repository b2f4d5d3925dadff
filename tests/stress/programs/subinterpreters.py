"""Sub-interpreters (3.12+): code run in new interpreters, one after another and from threads,
while the main interpreter is traced (the tracer is the main interpreter's; the others run
untraced and unharmed)."""
import sys
import threading

try:
    import _interpreters as interpreters  # 3.13
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.12

from _scale import scale

CODE = "def f(n):\n    return n if n < 2 else f(n-1) + f(n-2)\nx = f(15)\nassert x == 610, x\n"


def work(n):
    return n if n < 2 else work(n - 1) + work(n - 2)


def run_in_new():
    interp = interpreters.create()
    try:
        if hasattr(interpreters, "run_string"):
            result = interpreters.run_string(interp, CODE)
        else:
            result = interpreters.exec(interp, CODE)
        return result is None
    finally:
        interpreters.destroy(interp)


results = [run_in_new() for _ in range(scale(5, 200))]
print("sequential", results)
threaded = []
threads = [threading.Thread(target=lambda: threaded.append(run_in_new())) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads", threaded, work(18))
