"""Code-object churn: new code objects are compiled, called and dropped over and over (exec of
fresh source, lambdas from eval, classes with methods); the process's memory must stay bounded
(the resident size after the churn within 16 MB of the size after a warm-up). Under the
sanitizers (ETWTRACE_SANITIZED=1) memory is not measured: ASan's quarantine keeps freed memory."""
import gc
import os

from _scale import scale

ROUNDS = scale(3000, 200000)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def churn(i):
    ns = {}
    exec(f"def f_{i}(x):\n    return x + {i}\nclass C_{i}:\n    def m(self):\n        return f_{i}(1)\n", ns)
    value = ns[f"f_{i}"](1) + ns[f"C_{i}"]().m()
    value += eval(f"lambda: {i}")()
    return value


total = 0
warmup = ROUNDS // 10
for i in range(warmup):
    total += churn(i)
gc.collect()
before = rss_mb()
for i in range(warmup, ROUNDS):
    total += churn(i)
gc.collect()
growth = rss_mb() - before
print("total", total)
if os.environ.get("ETWTRACE_SANITIZED"):
    print("memory not measured under the sanitizers")
else:
    print("memory bounded", growth < 16, "" if growth < 16 else f"(grew {growth:.1f} MB)")
