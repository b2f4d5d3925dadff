"""Recursion at and beyond the default limit: the depth reached before RecursionError (the same
as untraced), in a plain function, a method, a generator chain, and an uncaught one at the end
(its traceback, "[Previous line repeated N more times]" and all, is the untraced one)."""
import sys


def depth(n=0):
    try:
        return depth(n + 1)
    except RecursionError:
        return n


class Node:
    def down(self, n=0):
        try:
            return self.down(n + 1)
        except RecursionError:
            return n


def nested_gen(n):
    yield n
    yield from nested_gen(n + 1)


def last(g):
    value = None
    try:
        for value in g:
            pass
    except RecursionError:
        pass
    return value


def forever(n):
    return forever(n + 1)


print("limit", sys.getrecursionlimit())
print("function", depth())
print("method", Node().down())
print("generators", last(nested_gen(0)))
print("again", depth())
sys.stdout.flush()
forever(0)
