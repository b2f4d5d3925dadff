"""multiprocessing with the fork start method: a Pool's map, a Process with a Queue, an
exception from a worker re-raised in the parent."""
import multiprocessing as mp

from _scale import scale


def square(x):
    return x * x


def fails(x):
    raise ValueError(f"worker failed on {x}")


def put(q):
    q.put(sum(range(1000)))


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    # close() + join(), not `with`: leaving `with Pool()` terminates the workers with SIGTERM,
    # which cuts their traces short (as any killed process's); here they end on their own.
    pool = ctx.Pool(2)
    print("map", sum(pool.map(square, range(scale(200, 20000)))))
    try:
        pool.apply(fails, (3,))
    except ValueError as e:
        print("raised", e)
    pool.close()
    pool.join()
    q = ctx.Queue()
    p = ctx.Process(target=put, args=(q,))
    p.start()
    print("queue", q.get())
    p.join()
    print("exitcode", p.exitcode)
