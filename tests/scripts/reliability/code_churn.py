"""Makes functions with exec() and calls each once: `dead` drops each (the same source
every time, as code compiled again and again is), `live` keeps each (a distinct name each).
Prints what the functions computed (the same traced and untraced); with MEMORY_REPORT set,
writes there the growth of RSS and PSS (kB) over the last `count` functions, after a warm-up.

usage: code_churn.py dead|live count
"""
import gc
import os
import sys


def memory_kb():
    values = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


def make(kind, i):
    name = f"f{i}" if kind == "live" else "f"
    namespace = {}
    exec(f"def {name}(x):\n    return x * 3 + 1\n", namespace)
    return namespace[name]


def churn(kind, start, count, keep):
    total = 0
    for i in range(start, start + count):
        function = make(kind, i)
        total += function(i)
        if kind == "live":
            keep.append(function)
    return total


kind, count = sys.argv[1], int(sys.argv[2])
keep = []
warm = churn(kind, 0, 2000, keep)
keep.extend([None] * count)  # the list's own growth is not the functions' cost
del keep[-count:]
gc.collect()
before = memory_kb()
total = churn(kind, 2000, count, keep)
gc.collect()
after = memory_kb()
print(kind, count, warm, total, len(keep))
if os.environ.get("MEMORY_REPORT"):
    with open(os.environ["MEMORY_REPORT"], "w") as f:
        f.write(f"{after[0] - before[0]} {after[1] - before[1]}\n")
