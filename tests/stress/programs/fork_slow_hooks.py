"""os.fork() whose after-fork-in-parent hook (the program's own) takes longer than a trace
chunk's flush interval and makes calls, in the parent and in a forked child that forks again.
3.12+ warn when fork() is called in a process with more than one thread, 3.13.0 counting the
threads after those hooks: a tracer thread back by then would add that warning."""
import os
import time
import warnings

warnings.simplefilter("always", DeprecationWarning)


def slow_after_fork():
    time.sleep(0.15)  # longer than the 100 ms after which a partial chunk is sent
    sum(len(str(i)) for i in range(100))


os.register_at_fork(after_in_parent=slow_after_fork)


def fork_and_wait(code):
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


print("child exit", fork_and_wait(3), flush=True)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, f"grandchild exit {fork_and_wait(4)}\n".encode())
    os._exit(0)
os.close(w)
with os.fdopen(r) as f:
    print(f.read(), end="")
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
