"""100,000 live functions: distinct code objects (made with code.replace, as a code generator
would), all alive at once, each called (also from a thread), then dropped and collected."""
import gc
import threading
import types

from _scale import scale

COUNT = 100_000


def template(x):
    return x + 0


def main():
    code = template.__code__
    functions = [types.FunctionType(code.replace(co_name=f"f{i}", co_firstlineno=i + 1,
                                                 co_consts=tuple(i % 7 if c == 0 else c for c in code.co_consts)),
                                    globals()) for i in range(COUNT)]
    print("live", len({f.__code__ for f in functions}))
    for _ in range(scale(1, 5)):
        print("sum", sum(f(1) for f in functions))
    other = []
    t = threading.Thread(target=lambda: other.append(sum(f(2) for f in functions)))
    t.start()
    t.join()
    print("thread", other)
    del functions
    print("collected", gc.collect() >= 0)


main()
