"""Deep recursion up to RecursionError, at the default limit and a raised one: the depth reached
(counted from the bottom of the stack) and the error must not change when traced.

Tracing is switched on here, by ETWTRACE_TEST_MODE=stack (or =noop: the bare PEP 523 hook), so
traced and untraced runs start from the same stack (the launcher adds frames of its own)."""
import os
import sys
import traceback

if os.environ.get("ETWTRACE_TEST_MODE") == "stack":
    import etwtrace

    etwtrace.StackSamplingTracer().enable()
elif os.environ.get("ETWTRACE_TEST_MODE") == "noop":
    from etwtrace import _etwtrace

    _etwtrace._bench_noop_hook(True)

deepest = 0


def down(n):
    global deepest
    deepest = n
    down(n + 1)


def measure(label):
    global deepest
    deepest = 0
    base = len(traceback.extract_stack())
    try:
        down(0)
    except RecursionError as ex:
        print(label, "depth", base + deepest, "error", ex)


def mutual_a(n):
    return mutual_b(n - 1) if n else 0


def mutual_b(n):
    return mutual_a(n - 1) + 1 if n else 0


measure("default")
print("mutual", mutual_a(400))
sys.setrecursionlimit(1400)
measure("raised")
