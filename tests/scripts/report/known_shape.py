"""A program of known shape for the report's tests (run under python -m etwtrace).

* inside the mark range "burn": hot() does 70% of the work and cold() 30%, both pure bytecode;
* inside the mark range "zlib": squeeze() compresses, its time in zlib's C code and libz;
* counted() is called exactly COUNTED_CALLS times;
* nap() sleeps (off-CPU time);
* the interpreter's machinery between Python frames: an import that runs code, a generator,
  an asyncio coroutine, sorted() calling a Python key function, recursion.
"""
import asyncio
import sys
import time
import zlib

import etwtrace

COUNTED_CALLS = 1234
WORK_UNIT = 5000
DATA = b"".join(b"%d,%d;" % (i, i * 7919 % 10007) for i in range(60000))


def hot(rounds):
    x = 0
    for i in range(rounds):
        x = (x * 31 + i) % 1000003
    return x


def cold(rounds):
    x = 0
    for i in range(rounds):
        x = (x * 37 + i) % 1000033
    return x


def burn(seconds):
    # The 70/30 split is by work, not by the clock, so it holds on a busy machine too; the
    # length is CPU time, so the number of CPU samples does not depend on the machine's load.
    end = time.process_time() + seconds
    while time.process_time() < end:
        hot(7 * WORK_UNIT)
        cold(3 * WORK_UNIT)


def squeeze(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        zlib.compress(DATA, 9)


def counted(i):
    return i + 1


def count_calls():
    total = 0
    for i in range(COUNTED_CALLS):
        total += counted(i)
    return total


def nap():
    time.sleep(0.15)


def numbers(n):
    for i in range(n):
        yield i * i % 97


async def stepper(n):
    total = 0
    for i in range(n):
        await asyncio.sleep(0)
        total += sum(numbers(200))
    return total


def by_key(item):
    return -item


def recurse(n):
    return n if n < 2 else recurse(n - 1) + recurse(n - 2)


def machinery():
    import known_shape_imported  # runs code at import time

    sorted(range(20000), key=by_key)
    asyncio.run(stepper(300))
    return known_shape_imported.VALUE + recurse(18)


def main(seconds):
    etwtrace.mark("begin")
    with etwtrace.mark_range("burn"):
        burn(seconds)
    with etwtrace.mark_range("zlib"):
        squeeze(0.3)
    count_calls()
    nap()
    machinery()
    etwtrace.mark("end")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print("known shape done")
