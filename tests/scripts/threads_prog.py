"""Worker threads calling Python functions, with a thread-local and a barrier: output must not
change when traced."""
import threading

results = {}
local = threading.local()
barrier = threading.Barrier(4)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def worker(i):
    local.value = i
    barrier.wait()
    results[i] = (fib(15 + i), local.value)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(results.items()))
