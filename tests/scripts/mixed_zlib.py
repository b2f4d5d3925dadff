"""A Python call chain into zlib's C code: work -> compress -> zlib.compress -> deflate (libz)."""
import sys
import time
import zlib

DATA = b"".join(b"%d,%d;" % (i, i * 7919 % 10007) for i in range(60000))


def compress(data):
    return zlib.compress(data, 9)


def work(seconds):
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        compress(DATA)
        count += 1
    return count


if __name__ == "__main__":
    print("compressed", work(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0) > 0)
