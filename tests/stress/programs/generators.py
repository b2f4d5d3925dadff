"""Generators: send(), throw(), close(), yield from, GeneratorExit handling, generators
abandoned mid-way and collected, generator expressions, a generator that raises."""
import gc

from _scale import scale

N = scale(3000, 300000)


def counter(limit):
    total = 0
    try:
        for i in range(limit):
            got = yield i
            if got:
                total += got
    except GeneratorExit:
        print("counter closed at", total) if limit == 7 else None
        raise
    return total


def delegator(limit):
    result = yield from counter(limit)
    yield ("result", result)


def catcher():
    while True:
        try:
            yield "ok"
        except KeyError as e:
            yield f"caught {e}"


def failing():
    yield 1
    raise ValueError("from generator")


def main():
    total = 0
    for i in range(N):
        g = counter(10)
        next(g)
        total += g.send(i % 5) or 0
        g.close()
        total += sum(x * x for x in range(i % 13))
    d = delegator(4)
    print("delegated", list(d))
    c = catcher()
    print(next(c), c.throw(KeyError("k")), next(c))
    c.close()
    g = counter(7)
    next(g)
    g.send(3)
    g.close()
    abandoned = [counter(5) for _ in range(1000)]
    for g in abandoned:
        next(g)
    del abandoned
    gc.collect()
    try:
        list(failing())
    except ValueError as e:
        print("raised", e)
    g = counter(3)
    next(g)
    try:
        g.throw(RuntimeError("thrown in"))
    except RuntimeError as e:
        print("propagated", e)
    print("total", total)


main()
