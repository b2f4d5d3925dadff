"""Recursion with a raised limit: sys.setrecursionlimit(6000) (and in a thread with a big stack),
the depth reached is the untraced one; the limit is then lowered below the current depth."""
import sys
import threading

threading.stack_size(256 * 1024 * 1024)


def depth(n=0):
    try:
        return depth(n + 1)
    except RecursionError:
        return n


def lower_inside(n):
    if n:
        return lower_inside(n - 1)
    try:
        sys.setrecursionlimit(50)
    except RecursionError as e:
        return f"refused ({e})"
    return "lowered"


sys.setrecursionlimit(6000)
print("main", depth())
result = []
t = threading.Thread(target=lambda: result.append(depth()))
t.start()
t.join()
print("thread", result)
sys.setrecursionlimit(1000)
print("back to 1000", depth())
print(lower_inside(200))
sys.setrecursionlimit(1000)
