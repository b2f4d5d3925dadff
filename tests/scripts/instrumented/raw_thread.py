# Threads started with _thread.start_new_thread directly (no threading.Thread), one of them
# raising: traced like threading's threads, with _thread's own report of the exception.
import _thread
import sys
import time

import etwtrace

done = []


def leaf(n):
    etwtrace._mark_stack(f"raw{n}")


def worker(n, *, fail=False):
    leaf(n)
    done.append(n)
    if fail:
        raise ValueError(f"worker {n} failed")


_thread.start_new_thread(worker, (1,))
_thread.start_new_thread(worker, (2,), {"fail": True})
deadline = time.monotonic() + 10
while len(done) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.1)  # let the failing thread finish reporting
print(sorted(done))
sys.stdout.flush()
