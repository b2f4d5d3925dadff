"""os.fork(): children that compute, fork again, raise and exit with a code; the parent waits
for each and prints what they said and how they ended."""
import os
import sys

from _scale import scale


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def child(i):
    if i == 2:
        pid = os.fork()
        if pid == 0:
            os._exit(fib(10) % 100)
        _, status = os.waitpid(pid, 0)
        print(f"grandchild exit {os.waitstatus_to_exitcode(status)}", flush=True)
    if i == 3:
        raise SystemExit(5)
    print(f"child {i} fib {fib(15 + i)}", flush=True)


def main():
    for i in range(scale(4, 40)):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.dup2(w, 1)
            try:
                child(i % 4)
            except SystemExit as e:
                sys.stdout.flush()
                os._exit(e.code)
            sys.stdout.flush()
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        print(out, end="")
        print(f"child {i} exit {os.waitstatus_to_exitcode(status)}")
    print("parent", fib(18))


main()
