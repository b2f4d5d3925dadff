"""A small program to capture: Python work, zlib compression (native code) and a thread.

    python -m etwtrace --capture demo.etwtrace -- scripts/demo.py
    perf report -i demo.etwtrace/perf.data --no-children --sort sym

Where its time goes, in a capture: `fib` (pure Python recursion), `compress_blocks` calling into
libz's deflate, `checksum_worker` on a second thread, and `waiter` sleeping (off-CPU, a CSwitch).
"""

import sys
import threading
import time
import zlib

import etwtrace


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def make_data(size):
    # Compressible but not trivial: repeated text with a changing counter.
    return b"".join(b"block %d of the etwtrace demo; " % i for i in range(size // 32))


def compress_blocks(data, rounds):
    total = 0
    for _ in range(rounds):
        total += len(zlib.compress(data, 9))
    return total


def checksum_worker(data, rounds, results):
    crc = 0
    for _ in range(rounds):
        crc = zlib.crc32(data, crc)
        crc ^= sum(data[::4096])
    results.append(crc)


def waiter(seconds):
    time.sleep(seconds)


def main(scale=1.0):
    data = make_data(int(256 * 1024 * scale))
    results = []
    worker = threading.Thread(target=checksum_worker, args=(data, int(400 * scale), results),
                              name="checksum")
    worker.start()
    with etwtrace.mark_range("fib"):
        print("fib(24) =", fib(24))
    with etwtrace.mark_range("compress"):
        print("compressed bytes:", compress_blocks(data, max(1, int(8 * scale))))
    etwtrace._mark_stack("before waiting")
    waiter(0.05)
    worker.join()
    print("checksum:", results[0])


if __name__ == "__main__":
    import warnings

    # The marks warn (harmlessly) when the demo runs without tracing.
    warnings.simplefilter("ignore", RuntimeWarning)
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
