"""Marks its stack, then ends as argv[1] says: exit CODE, raise, os_exit CODE, segv, spin."""
import os
import signal
import sys
import time

import etwtrace


def before_end():
    etwtrace._mark_stack("before end")


def hot(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


before_end()
how = sys.argv[1]
if how == "exit":
    sys.exit(int(sys.argv[2]))
elif how == "raise":
    raise RuntimeError("the target failed")
elif how == "os_exit":
    os._exit(int(sys.argv[2]))
elif how == "segv":
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGSEGV)
elif how == "spin":
    print("spinning", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hot(20000)
        etwtrace._mark_stack("spin")
