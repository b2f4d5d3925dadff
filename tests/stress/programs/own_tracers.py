"""The program's own tracers and profilers alongside ours: sys.settrace, sys.setprofile,
threading.settrace/setprofile, cProfile, and coverage.py's tracer; each counts what it saw and
the counts are printed."""
import cProfile
import io
import pstats
import sys
import threading

from _scale import scale

N = scale(300, 30000)


def work(n):
    return n if n < 2 else work(n - 1) + work(n - 2)


def counting(kind_counts):
    def hook(frame, event, arg):
        if frame.f_code is work.__code__:
            kind_counts[event] = kind_counts.get(event, 0) + 1
        return hook if event == "call" else None
    return hook


def with_settrace():
    counts = {}
    sys.settrace(counting(counts))
    for i in range(N):
        work(i % 8)
    sys.settrace(None)
    return dict(sorted(counts.items()))


def with_setprofile():
    counts = {}

    def hook(frame, event, arg):
        if frame.f_code is work.__code__ or event.startswith("c_"):
            key = event if not event.startswith("c_") else (event, getattr(arg, "__name__", "?"))
            counts[key] = counts.get(key, 0) + 1
    sys.setprofile(hook)
    for i in range(N):
        work(i % 8)
        len("x")
    sys.setprofile(None)
    return sorted(counts.items(), key=str)


def with_threads():
    counts = {}
    threading.settrace(counting(counts))
    t = threading.Thread(target=lambda: [work(i % 6) for i in range(N)])
    t.start()
    t.join()
    threading.settrace(None)
    return dict(sorted(counts.items()))


def with_cprofile():
    profile = cProfile.Profile()
    profile.enable()
    for i in range(N):
        work(i % 8)
    profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    return [(k[2], v[1]) for k, v in stats.stats.items() if k[2] == "work"]


def with_coverage():
    import coverage

    cov = coverage.Coverage(data_file=None, branch=True, include=[__file__])
    cov.start()
    for i in range(N):
        work(i % 8)
    cov.stop()
    data = cov.get_data()
    return len(data.lines(__file__) or ()), len(data.arcs(__file__) or ())


print("settrace", with_settrace())
print("setprofile", with_setprofile())
print("threading.settrace", with_threads())
print("cProfile", with_cprofile())
print("coverage", with_coverage())
print("after", work(15))
