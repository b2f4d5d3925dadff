"""The program's own profiler: cProfile around 1000 calls of work(), then sys.setprofile with
a callback counting events, then 1000 more calls. Prints what each profiler saw."""
import cProfile
import pstats
import sys
from collections import Counter


def work(i):
    return len(str(i))


def main():
    profile = cProfile.Profile()
    profile.enable()
    total = sum(work(i) for i in range(1000))
    profile.disable()
    stats = pstats.Stats(profile)
    calls = [v[1] for k, v in stats.stats.items() if k[2] == "work"]
    print("total", total, "cProfile work calls", calls)
    seen = Counter()

    def callback(frame, event, arg):
        if event.startswith("c_") and getattr(arg, "__name__", "") != "len":
            return
        if event in ("call", "return") and frame.f_code.co_name != "work":
            return
        seen[event] += 1

    sys.setprofile(callback)
    for i in range(1000):
        work(i)
    sys.setprofile(None)
    print("setprofile saw", sorted(seen.items()))
    print("after", sum(work(i) for i in range(1000)))


main()
