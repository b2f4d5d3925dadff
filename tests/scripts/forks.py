"""os.fork and a multiprocessing fork pool: output and exit status must not change when traced.

With an argument PATH, the first child also writes its pid to PATH and runs child_only(), so a
test can look at the child's own symbol files."""
import multiprocessing
import os
import sys


def square(x):
    return x * x


def child_only():
    return sum(square(i) for i in range(100))


def child_work():
    return sum(square(i) for i in range(1000))


def fork_once(pid_path):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        value = child_work()
        if pid_path:
            value += child_only() * 0
            with open(pid_path, "w") as f:
                f.write(str(os.getpid()))
        os.write(w, str(value).encode())
        os._exit(7)
    os.close(w)
    data = os.read(r, 100)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    print("child said", data.decode(), "exit", os.waitstatus_to_exitcode(status))


def pool():
    with multiprocessing.get_context("fork").Pool(2) as p:
        print("pool", p.map(square, range(8)))


if __name__ == "__main__":
    fork_once(sys.argv[1] if len(sys.argv) > 1 else None)
    pool()
    print("parent done")
