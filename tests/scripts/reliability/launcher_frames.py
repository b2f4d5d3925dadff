"""What a program sees of the frames under it: run by `python` (as a script, -m, -c, a
directory or a zip app) there is nothing but its own (and runpy's, for -m and directories);
under the launcher it must see the same. Ends with an uncaught exception, whose traceback and
exit status (1) must be the untraced run's too."""
import inspect
import sys
import threading
import traceback
import warnings


def depth():
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def describe(where):
    stack = traceback.extract_stack()
    print(where, "extract_stack", len(stack), [(f.name, f.lineno) for f in stack])
    print(where, "inspect.stack", len(inspect.stack()), "getframe depth", depth())


def recurse(n):
    try:
        return recurse(n + 1)
    except RecursionError:
        return n


describe("main")
print("recursion depth", recurse(1))
# A warning attributed three levels up: beyond the program's own frames, as untraced.
warnings.warn("from the top", stacklevel=3)
thread = threading.Thread(target=describe, args=("thread",))
thread.start()
thread.join()


def fail():
    raise ValueError("uncaught")


fail()
