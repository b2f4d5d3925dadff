"""Call-heavy: recursive fib, one Python call per addition (the worst case for every tracer)."""

import math


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def calls(n):
    """How many calls fib(n) makes: 2 * F(n + 1) - 1."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


def size(scale):
    # fib(27) is ~0.02 s on 3.11-3.13 on a quiet machine; each +1 of n costs ~1.6 times as much.
    return max(5, 27 + round(math.log(scale) / math.log(1.618)))


def run(scale):
    return fib(size(scale))
