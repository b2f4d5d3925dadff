import zlib

import etwtrace


def do_compress(data):
    etwtrace._mark_stack("compress")
    return zlib.compress(data)


def measure(items):
    return len(items)


def main():
    total = 0
    for i in range(5):
        total += measure([0] * i)
        total += len(do_compress(b"x" * 100))
    return total


main()
