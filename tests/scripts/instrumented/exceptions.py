import zlib

import etwtrace


def fail(depth):
    if depth == 0:
        raise ValueError("boom")
    fail(depth - 1)


def c_fail():
    try:
        zlib.decompress(b"not zlib data")
    except zlib.error:
        etwtrace._mark_stack("after-c-raise")


def catcher():
    try:
        fail(3)
    except ValueError:
        etwtrace._mark_stack("caught")
    c_fail()


catcher()
etwtrace._mark_stack("module")
