"""Exceptions and tracebacks: caught, chained (from / during handling), re-raised from
finally, raised in C callbacks (sorted key, map), printed tracebacks, exception groups
(3.11+), a SystemExit from deep inside, and an uncaught one whose traceback ends the program."""
import sys
import traceback

from _scale import scale


def thrower(n):
    if n == 0:
        raise KeyError("deep")
    return thrower(n - 1)


def chained():
    try:
        thrower(3)
    except KeyError as e:
        raise ValueError("chained") from e


def during():
    try:
        1 / 0
    except ZeroDivisionError:
        raise RuntimeError("during handling")


def in_finally():
    try:
        return 1
    finally:
        raise LookupError("from finally")


def bad_key(x):
    if x == 3:
        raise TypeError("bad key")
    return x

if sys.version_info >= (3, 11):
    exec(compile("""
def _groups():
    try:
        raise ExceptionGroup("group", [ValueError(1), KeyError(2)])
    except* ValueError as eg:
        print("except* ValueError", repr(eg.exceptions))
    except* KeyError as eg:
        print("except* KeyError", repr(eg.exceptions))
""", "<groups>", "exec"))


def main():
    caught = 0
    for i in range(scale(20000, 500000)):
        try:
            thrower(i % 10)
        except KeyError:
            caught += 1
    print("caught", caught)
    for f in (chained, during, in_finally):
        try:
            f()
        except Exception:
            traceback.print_exc()
    try:
        sorted(range(5), key=bad_key)
    except TypeError:
        traceback.print_exc()
    try:
        list(map(bad_key, range(5)))
    except TypeError as e:
        print("map", e, e.__traceback__.tb_next.tb_frame.f_code.co_name)
    if sys.version_info >= (3, 11):
        _groups()
    try:
        def exits(n):
            if n == 0:
                sys.exit(7)
            exits(n - 1)
        exits(50)
    except SystemExit as e:
        print("SystemExit", e.code)
    sys.stdout.flush()
    chained()



main()
