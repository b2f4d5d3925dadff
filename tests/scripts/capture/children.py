"""A parent that starts a traced child process and a forked child; each marks its stack."""
import os
import subprocess
import sys

import etwtrace


def in_parent():
    etwtrace._mark_stack("parent")


def in_fork():
    etwtrace._mark_stack("fork")


in_parent()
child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
subprocess.run([sys.executable, "-m", "etwtrace", "--", child], check=True)
pid = os.fork()
if pid == 0:
    in_fork()
    os._exit(0)
os.waitpid(pid, 0)
