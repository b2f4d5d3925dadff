"""N threads (default 4) computing for SECONDS (default 5): the user report's program."""
import sys
import threading
import time


def spin(deadline):
    n = 0
    while time.monotonic() < deadline:
        n += sum(i * i for i in range(200))
    return n


def main(seconds=5.0, threads=4):
    deadline = time.monotonic() + seconds
    workers = [threading.Thread(target=spin, args=(deadline,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("done")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0, int(sys.argv[2]) if len(sys.argv) > 2 else 4)
