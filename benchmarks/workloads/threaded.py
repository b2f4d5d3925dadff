"""Threads: four workers mixing Python loops with hashlib (which releases the GIL on big
buffers), joined by the main thread."""

import hashlib
import threading


def worker(rounds, results, index):
    data = bytes(range(256)) * 256
    acc = 0
    for i in range(rounds):
        for j in range(200):
            acc = (acc * 31 + j) % 1000003
        acc ^= hashlib.sha1(data).digest()[i % 20]
    results[index] = acc


def run(scale):
    rounds = max(1, int(150 * scale))
    results = [0] * 4
    threads = [threading.Thread(target=worker, args=(rounds, results, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
