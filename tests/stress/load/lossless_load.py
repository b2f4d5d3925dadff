"""Load for the lossless test: THREADS threads each call their own empty function CALLS times,
at once (a barrier starts them together), then print their native thread ids and call counts, and the process's peak resident size
(VmHWM: this process image's own, not inherited from whatever forked it).

Usage: lossless_load.py CALLS [THREADS]
"""
import sys
import threading

CALLS = int(sys.argv[1])
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 4


def call_0():
    pass


def call_1():
    pass


def call_2():
    pass


def call_3():
    pass


FUNCTIONS = [call_0, call_1, call_2, call_3]
barrier = threading.Barrier(THREADS)
made = {}


def worker(index):
    f = FUNCTIONS[index % len(FUNCTIONS)]
    barrier.wait()
    n = 0
    for _ in range(CALLS):
        f()
        n += 1
    made[index] = (threading.get_native_id(), n)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for index in sorted(made):
    tid, n = made[index]
    print(index, FUNCTIONS[index % len(FUNCTIONS)].__name__, tid, n)
with open("/proc/self/status") as f:
    print("peak_kb", next(line.split()[1] for line in f if line.startswith("VmHWM:")))
