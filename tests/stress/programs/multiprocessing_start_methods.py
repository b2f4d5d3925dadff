"""multiprocessing with both start methods, fork and spawn (spawn's children are fresh
interpreters, which the launcher does not trace): a Pool's map, a Process with a Queue, an
exception from a worker re-raised in the parent."""
import multiprocessing as mp

from _scale import scale


def square(x):
    return x * x


def fails(x):
    raise ValueError(f"worker failed on {x}")


def put(q):
    q.put(sum(range(1000)))


def exercise(method):
    ctx = mp.get_context(method)
    # close() + join(), not `with`: leaving `with Pool()` terminates the workers with SIGTERM,
    # which cuts their traces short (as any killed process's); here they end on their own.
    pool = ctx.Pool(2)
    print(method, "map", sum(pool.map(square, range(scale(200, 20000)))))
    try:
        pool.apply(fails, (3,))
    except ValueError as e:
        print(method, "raised", e)
    pool.close()
    pool.join()
    q = ctx.Queue()
    p = ctx.Process(target=put, args=(q,))
    p.start()
    print(method, "queue", q.get())
    p.join()
    print(method, "exitcode", p.exitcode)


if __name__ == "__main__":
    for start_method in ("fork", "spawn"):
        exercise(start_method)
