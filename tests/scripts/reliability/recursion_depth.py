"""How deep a program recurses before RecursionError, and the message it gets, in the shapes
whose accounting differs between CPython versions. Untraced and traced runs must print the
same lines; untraced it never crashes.

  plain / callable         default limit: Python calls, calls through __call__ (tp_call)
  raised                   the limit raised: 120,000 on 3.11+ (Python calls use no C stack
                           there), 15,000 on 3.9/3.10 (they do; deeper crashes untraced)
  (Not here: recursion through C functions that charge nothing, such as map(), which 3.12
  stack mode lets reach the Python limit; see docs/reliability.md.)
  repr_at_depth            C recursion (nested lists' repr) started deep in Python recursion:
                           CPython's C budget must still stop it, and the C stack left there
                           must still hold it
"""
import sys


# The error is turned into text once unwound: a C call at the very limit (str(e) there) costs
# one more level on 3.11 under a profile function (instrumented mode), see docs/reliability.md.
def plain(n):
    try:
        return plain(n + 1)
    except RecursionError as e:
        return n, e


class Callable:
    def __call__(self, n):
        try:
            return self(n + 1)
        except RecursionError as e:
            return n, e


def shown(result):
    depth, error = result
    return depth, str(error)


def nested_repr(depth):
    value = []
    for _ in range(depth):
        value = [value]
    try:
        return len(repr(value))
    except RecursionError as e:
        return str(e)


def at_depth(n, target, action):
    if n < target:
        return at_depth(n + 1, target, action)
    return action()


print("plain", shown(plain(1)))
print("callable", shown(Callable()(1)))

inlined = sys.version_info >= (3, 11)
sys.setrecursionlimit(120_000 if inlined else 15_000)
print("raised", shown(plain(1)))
if sys.version_info >= (3, 12):
    # C recursion has a budget of its own (1500 / 10000 levels), whatever the Python depth.
    print("repr_at_depth", at_depth(1, 60_000, lambda: nested_repr(100_000)))
else:
    # The one limit counts Python and C levels together.
    sys.setrecursionlimit(1000)
    print("repr_at_depth", at_depth(1, 500, lambda: nested_repr(100_000)))
