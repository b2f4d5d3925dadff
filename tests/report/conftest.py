"""Profiles for the report's format tests.

`synthetic_profile` is a small Profile of known shape, built by hand (no tracing), with every
metric and a timeline: fast tests of each writer's structure. Tests of real captures build their
Profile from a capture made in the test (see test_report_cli.py).
"""

import pytest

from etwtrace._report.profile import KERNEL, NATIVE, PYTHON, Health, Mark, Profile, Sample, Slice, FrameKey, FunctionStats


def make_synthetic_profile():
    p = Profile(source="/tmp/synthetic.etwtrace", mode="stack", start_ns=1_000_000_000,
                end_ns=2_000_000_000, sample_period_ns=1_001_001)
    module = p.frame(FrameKey(PYTHON, "<module>", "/src/app.py", 1))
    main = p.frame(FrameKey(PYTHON, "main", "/src/app.py", 10))
    hot = p.frame(FrameKey(PYTHON, "hot", "/src/app.py", 20))
    cold = p.frame(FrameKey(PYTHON, "cold", "/src/app.py", 30))
    compress = p.frame(FrameKey(NATIVE, "zlib_compress", "/usr/lib/python3.11/lib-dynload/zlib.so"))
    deflate = p.frame(FrameKey(NATIVE, "deflate", "/usr/lib/x86_64-linux-gnu/libz.so.1"))
    write = p.frame(FrameKey(KERNEL, "ksys_write", "[kernel.kallsyms]"))
    s_hot = p.stack((module, main, hot))
    s_deflate = p.stack((module, main, hot, compress, deflate))
    s_cold = p.stack((module, main, cold))
    s_write = p.stack((module, main, cold, write))
    pid, tid, tid2 = 100, 100, 101
    p.threads[(pid, tid)] = "MainThread"
    p.threads[(pid, tid2)] = "worker"
    p.processes[pid] = "python app.py"
    # 700 samples in hot (400 of them in deflate under it), 300 in cold (100 in the kernel).
    for stack, n, t in ((s_hot, 300, tid), (s_deflate, 400, tid), (s_cold, 200, tid2), (s_write, 100, tid2)):
        p.add("cpu", pid, t, stack, n)
    p.add("offcpu", pid, tid2, s_write, 250_000_000)
    p.add("instrumented", pid, tid, s_hot, 600_000_000)
    p.add("instrumented", pid, tid, s_cold, 200_000_000)
    p.add("calls", pid, tid, s_hot, 7)
    p.add("calls", pid, tid, s_cold, 3)
    p.functions[hot] = FunctionStats(7, 600_000_000, 600_000_000)
    p.functions[cold] = FunctionStats(3, 200_000_000, 200_000_000)
    p.functions[main] = FunctionStats(1, 800_000_000, 0)
    p.functions[module] = FunctionStats(1, 800_000_000, 0)
    t0 = p.start_ns
    p.slices += [Slice(pid, tid, t0, t0 + 800_000_000, module, 0),
                 Slice(pid, tid, t0 + 1000, t0 + 799_000_000, main, 1),
                 Slice(pid, tid, t0 + 2000, t0 + 600_000_000, hot, 2),
                 Slice(pid, tid, t0 + 600_001_000, t0 + 798_000_000, cold, 2)]
    p.marks += [Mark(pid, tid, t0 + 5000, None, "start", "mark"),
                Mark(pid, tid, t0 + 10_000, t0 + 500_000_000, "phase one", "range"),
                Mark(pid, tid, t0 + 20_000, None, "here", "stack", s_hot)]
    for i in range(50):
        p.samples.append(Sample(pid, tid if i % 2 else tid2, t0 + i * 10_000_000,
                                (s_hot, s_deflate, s_cold, s_write)[i % 4], "cpu", 1))
    p.samples.append(Sample(pid, tid2, t0 + 700_000_000, s_write, "offcpu", 250_000_000))
    p.health = Health(samples=1000, context_switches=1)
    return p


@pytest.fixture
def synthetic_profile():
    return make_synthetic_profile()
