"""Forks 3 times; each child computes, prints a line and exits; the parent waits and prints.
Untraced, with or without -W error::DeprecationWarning, it prints only that and exits 0."""
import os
import sys


def work(n):
    return sum(i * i for i in range(n))


def main():
    for k in range(3):
        pid = os.fork()
        if pid == 0:
            print("child", k, work(1000 + k), flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("parent saw child", k, "status", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status, flush=True)
    print("parent", work(500))


main()
