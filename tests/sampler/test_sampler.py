"""The in-process sampler (SamplingTracer, `--sampler`) on the CPython running the tests: real
programs, real signals, the trace file read back through etwtrace.read()."""

import os
import subprocess
import sys

import pytest



def chain(event):
    """(name, line) of each Python frame of a sample, leaf first."""
    return [(f.name, f.line) for f in event.stack if f.is_python]


HOT_CHAIN = """\
def leaf(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def third(n):
    return leaf(n)

def second(n):
    return third(n)

def first():
    for _ in range(40):
        second(50000)

first()
print("ok")
"""
EXPECTED_CHAIN = [("third", 8), ("second", 11), ("first", 15), ("<module>", 17)]


def test_hot_leaf_shows_the_exact_caller_chain_with_lines(run_sampled):
    run = run_sampled(HOT_CHAIN, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.proc.stdout == "ok\n"
    samples = run.events()
    in_leaf = [chain(e) for e in samples if chain(e) and chain(e)[0][0] == "leaf"]
    assert len(in_leaf) >= 20, f"only {len(in_leaf)} samples in leaf out of {len(samples)}"
    for c in in_leaf:
        assert c[0][1] in (2, 3, 4, 5), c  # a line of leaf's body
    exact = sum(1 for c in in_leaf if c[1:] == EXPECTED_CHAIN)
    assert exact >= 0.95 * len(in_leaf), (exact, len(in_leaf), in_leaf[:5])
    # Native frames around them: the interpreter's start-up below <module>, and the process's root.
    merged = [e for e in samples if chain(e) and chain(e)[0][0] == "leaf"]
    rooted = sum(1 for e in merged if not e.stack[-1].is_python
                 and e.stack[-1].name in ("_start", "__libc_start_main", "_start_main"))
    assert rooted >= 0.95 * len(merged), [[f.name for f in e.stack] for e in merged[:3]]
    (trace,) = run.traces
    from etwtrace._read import TraceFile

    stats = TraceFile(trace).sampler
    assert stats["samples"] == len(samples) and stats["dropped"] == 0 and stats["period_ns"] == 1000000
    assert {e.timestamp for e in samples} and all(e["Event"] == "task-clock" for e in samples)


def test_zlib_compress_under_its_python_callers(run_sampled):
    source = """\
    import zlib

    def compress(data):
        return zlib.compress(data, 9)

    def caller():
        data = bytes(range(256)) * 8000
        for _ in range(30):
            compress(data)

    caller()
    """
    run = run_sampled(source, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    samples = run.events()
    in_zlib = []
    for e in samples:
        names = [f.name for f in e.stack]
        modules = [os.path.basename(f.module or "") for f in e.stack]
        first_python = next((i for i, f in enumerate(e.stack) if f.is_python), None)
        if first_python and any(m.startswith("libz") for m in modules[:first_python]):
            in_zlib.append(chain(e))
    assert len(in_zlib) >= 0.5 * len(samples), (len(in_zlib), len(samples))
    assert all(c[:3] == [("compress", 4), ("caller", 9), ("<module>", 11)] for c in in_zlib), in_zlib[:3]
    # The sampler's own work on the program's thread (its drain rounds, the kernel's names it
    # loads at disable) is not the program's: at most a sample deferred to where it unblocks.
    ours = [e for e in samples if any("_etwtrace" in os.path.basename(f.module or "")
                                      for f in e.stack[:next((i for i, f in enumerate(e.stack) if f.is_python),
                                                             len(e.stack))])]
    assert len(ours) <= max(2, 0.02 * len(samples)), (len(ours), len(samples))
    # Between libz and the Python caller: the zlib module's own C function, which is static
    # (no dynamic symbol, so dladdr cannot name it) and is named from the module's .symtab.
    zlib_module = [f for e in samples for f in e.stack if not f.is_python and "zlib" in os.path.basename(f.module or "")]
    # (Seen once, an unnamed frame in the zlib module: most likely its PLT stub into libz,
    # which no symbol covers; in a full test run on 3.13, not reproduced since.)
    named = [f for f in zlib_module if f.name]
    assert zlib_module and len(named) >= 0.95 * len(zlib_module), sorted({(str(f.name), f.module) for f in zlib_module})[:5]
    assert {"zlib_compress", "zlib_compress_impl"} & {f.name for f in zlib_module}, {f.name for f in zlib_module}
    from etwtrace._read import TraceFile

    (trace,) = run.traces
    stats = TraceFile(trace).sampler
    assert stats["unmerged"] <= 0.01 * stats["samples"], stats


def test_timer_source_and_wall_clock(run_sampled):
    source = """\
    import time, etwtrace

    def spin():
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass

    def nap():
        time.sleep(0.3)

    # CPU-clock timers fire on the kernel's tick (CONFIG_HZ): a low rate is within reach.
    with etwtrace.SamplingTracer(source="timer", rate=100):
        spin()
    with etwtrace.SamplingTracer(clock="wall", rate=200):
        nap()
    """
    run = run_sampled(source, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.proc.stderr == ""
    assert len(run.traces) == 2
    samples = run.events()
    spin = [e for e in samples if chain(e) and chain(e)[0][0] == "spin"]
    nap = [e for e in samples if chain(e) and chain(e)[0][0] == "nap"]
    # (a loaded machine gives the thread few ticks: fewer, but never none)
    assert len(spin) >= 10 and all(e["Event"] == "cpu-clock" for e in spin), len(spin)
    # The sleeping thread is sampled only by the wall clock.
    assert len(nap) >= 5 and all(e["Event"] == "wall-clock" for e in nap), len(nap)


THREADS = """\
import threading, time, etwtrace

def busy(seconds):
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass

def early_worker(go):
    go.wait()
    busy(0.3)

def late_worker():
    busy(0.3)

go = threading.Event()
early = threading.Thread(target=early_worker, args=(go,))
early.start()
with etwtrace.SamplingTracer(rate=500):
    go.set()
    late = threading.Thread(target=late_worker)
    late.start()
    busy(0.2)
    early.join()
    late.join()
"""


def test_threads_started_before_and_after_enabling(run_sampled):
    run = run_sampled(THREADS, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    by_function = {}
    for e in run.events():
        c = chain(e)
        if c and c[0][0] == "busy":
            by_function.setdefault(c[1][0], set()).add(e.thread_id)
    assert set(by_function) >= {"early_worker", "late_worker", "<module>"}, by_function
    tids = [next(iter(by_function[k])) for k in ("early_worker", "late_worker", "<module>")]
    assert len(set(tids)) == 3


FIRST_MILLISECONDS = """\
import threading, time, etwtrace

def busy(seconds):
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass

def short_lived():
    busy(0.03)  # less CPU time than the drain thread's 50 ms rescan interval

with etwtrace.SamplingTracer(rate=1000):
    for _ in range(5):
        t = threading.Thread(target=short_lived)
        t.start()
        t.join()
"""


def test_a_thread_started_by_threading_is_sampled_from_its_start(run_sampled):
    run = run_sampled(FIRST_MILLISECONDS, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    per_thread = {}
    for e in run.events():
        c = chain(e)
        if c and c[0][0] == "busy" and c[1][0] == "short_lived":
            per_thread[e.thread_id] = per_thread.get(e.thread_id, 0) + 1
    # 30 ms of CPU time at 1 kHz: 30 samples each; a thread first found by the 50 ms rescan got
    # none. Usually 29-31 arrive; at least half must (once, under CI load, one thread of five
    # had 21: docs/sampler.md counts that loss as not yet explained).
    assert len(per_thread) == 5 and min(per_thread.values()) >= 15, per_thread
    assert sum(per_thread.values()) >= 5 * 25, per_thread


RAW_THREAD = """\
import _thread, threading, time, etwtrace

def busy(seconds):
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass

def raw():
    busy(0.4)
    done.set()

done = threading.Event()
with etwtrace.SamplingTracer(rate=1000):
    _thread.start_new_thread(raw, ())
    done.wait()
    time.sleep(0.05)
"""


def test_a_thread_started_without_threading_is_found_within_a_rescan(run_sampled):
    # No start hook sees it: the drain thread notices the thread list's new head within its
    # 50 ms wake-up. 0.4 s of CPU time at 1 kHz is 400 samples; a thread found only at the
    # drain's first full round (after /proc/kallsyms was read, ~100 ms) got about 290.
    run = run_sampled(RAW_THREAD, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    samples = sum(1 for e in run.events() if (c := chain(e)) and c[0][0] == "busy" and c[1][0] == "raw")
    assert samples >= 320, samples


DLOPEN_LOOP = """\
import ctypes, ctypes.util, _ctypes, time

paths = [p for p in map(ctypes.util.find_library, ("bz2", "lzma", "expat", "uuid")) if p]
assert len(paths) >= 2, paths  # Debian: libbz2, liblzma, libexpat, libuuid
start, pairs = time.monotonic(), 0
while time.monotonic() - start < 2.0:
    for path in paths:
        _ctypes.dlclose(ctypes.CDLL(path)._handle)
        pairs += 1
print("done", pairs > 0)
"""


def test_native_unwinding_never_hangs_on_the_dynamic_loaders_lock(run_sampled):
    # A sample that lands while dlopen/dlclose is taking the loader's lock must not take it
    # again (libunwind's dl_iterate_phdr): that hung the program for good, every signal
    # blocked, within seconds of this loop at 20 kHz. Those samples keep Python frames only.
    run = run_sampled(DLOPEN_LOOP, "--sample-rate", "20000", timeout=90)
    assert (run.proc.returncode, run.proc.stdout) == (0, "done True\n"), run.proc.stderr
    from etwtrace._read import TraceFile

    (trace,) = run.traces
    stats = TraceFile(trace).sampler
    assert stats["samples"] > 1000 and 0 < stats["unmerged"] < stats["samples"], stats


def test_fork_child_samples_itself_into_its_own_file(run_sampled):
    source = """\
    import os, time

    def busy(seconds):
        t = time.process_time()
        while time.process_time() - t < seconds:
            pass

    def in_child():
        busy(0.3)

    def in_parent():
        busy(0.2)

    pid = os.fork()
    if pid == 0:
        in_child()
        os._exit(0) if False else None
    else:
        in_parent()
        os.waitpid(pid, 0)
    """
    run = run_sampled(source, "--sample-rate", "500")
    assert run.proc.returncode == 0, run.proc.stderr
    assert "multi-threaded" not in run.proc.stderr
    assert len(run.traces) == 2
    from etwtrace._read import TraceFile

    files = {TraceFile(t).info["parent_pid"]: t for t in run.traces}
    parent_file, child_file = files[0], [t for p, t in files.items() if p][0]
    parent = {chain(e)[1][0] for e in run.events(path=parent_file) if len(chain(e)) > 1}
    child = {chain(e)[1][0] for e in run.events(path=child_file) if len(chain(e)) > 1}
    assert "in_parent" in parent and "in_child" not in parent
    assert "in_child" in child and "in_parent" not in child


def test_generators_and_asyncio(run_sampled):
    source = """\
    import asyncio

    def numbers(n):
        for i in range(n):
            yield i * i

    def consume():
        total = 0
        for _ in range(20):
            total += sum(numbers(100000))
        return total

    async def crunch():
        total = 0
        for i in range(2000000):
            total += i
        return total

    async def main():
        await asyncio.gather(crunch())

    consume()
    asyncio.run(main())
    """
    run = run_sampled(source, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    chains = [chain(e) for e in run.events()]
    gen = [c for c in chains if c and c[0][0] == "numbers"]
    assert gen and sum(1 for c in gen if [n for n, _l in c[1:3]] == ["consume", "<module>"]) >= 0.95 * len(gen)
    coro = [c for c in chains if c and c[0][0] == "crunch"]
    # A frame caught on entry, before its first line runs, is at its `def` line (13): rare, but
    # legitimate. Every sample is inside crunch and the loop's two lines carry nearly all.
    assert coro and all(13 <= c[0][1] <= 17 for c in coro), [c[0] for c in coro]
    assert sum(1 for c in coro if c[0][1] in (15, 16)) >= 0.95 * len(coro), [c[0] for c in coro]


BEHAVIOUR = """\
import os, signal, sys, time, errno

hits = []
signal.signal(signal.SIGALRM, lambda *a: hits.append("alrm"))
signal.signal(signal.SIGPROF, lambda *a: hits.append("prof"))
signal.setitimer(signal.ITIMER_PROF, 0.01, 0.01)

def spin(seconds):
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass

spin(0.2)
signal.setitimer(signal.ITIMER_PROF, 0)
print("prof handler ran:", "prof" in hits)
r, w = os.pipe()
signal.setitimer(signal.ITIMER_REAL, 0.05)
try:
    data = os.read(r, 1)  # interrupted by SIGALRM: PEP 475 retries, so write from the handler
except InterruptedError:
    print("EINTR")
print("sleeping")
signal.signal(signal.SIGALRM, lambda *a: os.write(w, b"x"))
signal.setitimer(signal.ITIMER_REAL, 0.05)
print("read", os.read(r, 1))
print("out", flush=True)
print("err", file=sys.stderr)
def deep(n):
    return deep(n - 1) if n else 1 / 0
deep(50)
"""


def test_program_behaves_exactly_as_untraced(run_sampled, tmp_path):
    behaviour = BEHAVIOUR.replace('data = os.read(r, 1)', 'time.sleep(0.1)')
    traced = run_sampled(behaviour, "--sample-rate", "1000")
    script = tmp_path / "app.py"
    untraced = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert traced.proc.returncode == untraced.returncode == 1
    assert traced.proc.stdout == untraced.stdout
    assert "prof handler ran: True" in traced.proc.stdout
    assert traced.proc.stderr.replace(str(script), "app.py") == untraced.stderr.replace(str(script), "app.py")
    assert "ZeroDivisionError" in traced.proc.stderr


def test_sigint_and_exit_code(run_sampled, tmp_path):
    source = """\
    import os, signal, sys, time
    t = time.process_time()
    while time.process_time() - t < 0.1:
        pass
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)
    """
    traced = run_sampled(source, "--sample-rate", "1000")
    untraced = subprocess.run([sys.executable, str(tmp_path / "app.py")], capture_output=True, text=True)
    assert traced.proc.returncode == untraced.returncode == -2
    assert traced.proc.stderr.splitlines()[-1] == untraced.stderr.splitlines()[-1] == "KeyboardInterrupt"
    exit_code = run_sampled("import sys\nsys.exit(7)\n")
    assert exit_code.proc.returncode == 7


def test_marks_and_mark_stack(run_sampled):
    source = """\
    import etwtrace

    def where():
        etwtrace._mark_stack("here")

    with etwtrace.SamplingTracer():
        etwtrace.mark("one")
        with etwtrace.mark_range("span"):
            where()
    """
    run = run_sampled(source, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    import etwtrace

    events = [e for e in etwtrace.read(run.trace_dir) if e.name in ("PythonMark", "PythonStackSample")]
    assert [(e.name, e.opcode, e["Mark"]) for e in events] == [
        ("PythonMark", "Info", "one"), ("PythonMark", "Start", "span"), ("PythonStackSample", "Info", "here"),
        ("PythonMark", "Stop", "span")]
    assert chain(events[2]) == [("where", 4), ("<module>", 9)]


def test_ignore_and_include(run_sampled):
    source = """\
    import time, etwtrace

    def hot():
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass

    tracer = etwtrace.SamplingTracer(rate=500)
    tracer.ignore(__file__)
    with tracer:
        hot()
    """
    run = run_sampled(source, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    samples = run.events()
    assert samples and not any(f.name == "hot" for e in samples for f in e.stack)


def test_freed_code_objects_are_never_misattributed(run_sampled):
    source = """\
    import etwtrace
    names = set()
    with etwtrace.SamplingTracer(rate=2000):
        for i in range(300):
            name = f"f{i}"
            names.add(name)
            namespace = {}
            exec(f"def {name}():\\n    t = 0\\n    for j in range(20000):\\n        t += j\\n", namespace)
            namespace[name]()
            del namespace
    print(len(names))
    """
    run = run_sampled(source, api=True)
    assert run.proc.returncode == 0, run.proc.stderr
    for e in run.events():
        for f in e.stack:
            if f.is_python:
                assert f.name in {"<module>", "[freed code object]"} or (f.name[0] == "f" and f.name[1:].isdigit())
                if f.name.startswith("f") and f.name != "[freed code object]":
                    assert f.source_file == "<string>" and f.line in (1, 2, 3, 4)


def test_a_rate_near_the_cost_of_a_sample_does_not_stall_the_program(run_sampled):
    # At 50 kHz a period (20 us) is shorter than a sample costs here (~50 us with the signal's
    # delivery): the program must still get a full period of its own between two samples. This
    # program, 0.1-0.15 s untraced, ran over 120 s when samples were counted into the next period
    # and when the drain a dying exec()'d function runs was itself sampled. The bound is a hang
    # detector, far from the ~1.5 s it takes now.
    source = """\
    import etwtrace
    def f(x):
        return x + 1
    def deep(n):
        return sum(map(f, range(50))) if n == 0 else deep(n - 1)
    total = 0
    with etwtrace.SamplingTracer(rate=50000):
        for i in range(2000):
            namespace = {}
            exec(f"def g{i}(x):\\n    return [f(y) for y in range(x)]\\n", {"f": f}, namespace)
            total += len(namespace[f"g{i}"](20)) + sum(map(f, range(30))) + deep(i % 40)
    print(total)
    """
    run = run_sampled(source, api=True, timeout=60)
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.proc.stdout.strip() == "3520000"
    from etwtrace._read.trace_file import TraceFile

    # ~70 ms of the program's own CPU time at 20 us a period: thousands of samples. A first
    # signal that came before the event's fd was recorded could not re-arm it, and the
    # sampling stopped after one sample (3.11 at 50 kHz, every run).
    (trace,) = run.traces
    assert TraceFile(trace).sampler["samples"] >= 500


def test_report_renders_a_sampler_trace_in_every_format(run_sampled, tmp_path):
    run = run_sampled(HOT_CHAIN, "--sample-rate", "500")
    assert run.proc.returncode == 0, run.proc.stderr
    from etwtrace._report.formats import FORMATS

    (trace,) = run.traces
    for name, fmt in FORMATS.items():
        out = tmp_path / f"report{fmt.suffix}"
        proc = subprocess.run([sys.executable, "-m", "etwtrace", "report", trace, "-f", name, "-o", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
        assert out.stat().st_size > 0
    summary = subprocess.run([sys.executable, "-m", "etwtrace", "report", trace], capture_output=True, text=True)
    assert "mode: sampler" in summary.stdout and "leaf (app.py:1)" in summary.stdout
    folded = (tmp_path / "report.folded").read_text()
    assert "first" in folded and "leaf" in folded


def test_capture_with_the_sampler(tmp_path, python):
    script = tmp_path / "app.py"
    script.write_text(HOT_CHAIN)
    capture = tmp_path / "run.etwtrace"
    proc = subprocess.run([python, "-m", "etwtrace", "--sampler", "--sample-rate", "500", "--capture", str(capture),
                           "--", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"
    import etwtrace

    samples = [e for e in etwtrace.read(capture) if e.name == "SampledProfile"]
    assert any(chain(e)[:1] == [("leaf", 4)] or (chain(e) and chain(e)[0][0] == "leaf") for e in samples)
    report = subprocess.run([python, "-m", "etwtrace", "report", str(capture)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "leaf" in report.stdout


def test_enable_type_var_selects_the_sampler(tmp_path, run_sampled):
    source = """\
    import etwtrace
    etwtrace.enable_if(None, "MY_TYPE")
    print(type(etwtrace._automatic_tracer).__name__)
    """
    run = run_sampled(source, api=True, env={"MY_TYPE": "sampler"})
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.proc.stdout == "SamplingTracer\n"
    assert len(run.traces) == 1


def test_usage_errors(python):
    for args, text in ((["--sampler", "--sample-rate", "0"], "--sample-rate needs a whole number"),
                       (["--sample-rate", "10"], "only applies to the sampler"),
                       (["--sampler", "--stack"], "cannot be used together")):
        proc = subprocess.run([python, "-m", "etwtrace", *args, "--", "x.py"], capture_output=True, text=True)
        assert proc.returncode != 0 and text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def unprivileged_interpreter(shared, drop):
    """A command running this CPython with this installed etwtrace as `drop`'s user, from `shared`.

    The checkout (and the venv the tests run from) may sit in a directory only root can enter,
    and so may the pyenv interpreter (/root/.pyenv). The installed package tree is copied into
    `shared`; the interpreter is run where it is if that user can run it, else its installation
    is bind-mounted into `shared` in a mount namespace of the child's own (root can do both).
    None if neither works."""
    import shutil

    import etwtrace

    site = shared / "site"
    shutil.copytree(os.path.dirname(etwtrace.__file__), site / "etwtrace",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(site):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    os.chmod(site, 0o755)
    env = {"PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    probe = ["-c", "import etwtrace"]
    if subprocess.run([*drop, base, *probe], capture_output=True, env=dict(os.environ, **env)).returncode == 0:
        return [*drop, base], env
    prefix = os.path.realpath(sys.base_prefix)
    if not base.startswith(prefix + os.sep):
        return None
    mounted = shared / "python"
    mounted.mkdir()
    os.chmod(mounted, 0o755)
    inner = str(mounted) + base[len(prefix):]
    env["LD_LIBRARY_PATH"] = str(mounted / "lib")  # the interpreter's RUNPATH names the original
    command = ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"',
               prefix, str(mounted), *drop, inner]
    if subprocess.run([*command, *probe], capture_output=True, env=dict(os.environ, **env)).returncode == 0:
        return command, env
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user, which needs root")
def test_unprivileged_user(request, python):
    """As an ordinary user: perf events where perf_event_paranoid allows them (user space only),
    else the timer fallback, which says so once; samples either way."""
    import shutil
    import tempfile
    from pathlib import Path

    shared = Path(tempfile.mkdtemp(prefix="etwtrace-unprivileged-"))  # mode 0700, then opened up below
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    os.chmod(shared, 0o755)
    script = shared / "app.py"
    script.write_text(HOT_CHAIN)
    os.chmod(script, 0o644)
    trace_dir = shared / "out"
    trace_dir.mkdir()
    os.chmod(trace_dir, 0o777)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    found = unprivileged_interpreter(shared, drop)
    if found is None:
        reason = ("an unprivileged user cannot run this CPython here (its installation is private to root "
                  "and cannot be bind-mounted elsewhere)")
        if os.environ.get("ETWTRACE_REQUIRE_PERF"):
            pytest.fail(f"ETWTRACE_REQUIRE_PERF is set (CI runs every test): {reason}")
        pytest.skip(reason)
    command, env = found
    code = ("import etwtrace, runpy, sys; t = etwtrace.SamplingTracer(rate=500); t.enable(); "
            f"runpy.run_path({str(script)!r}); t.disable()")
    proc = subprocess.run([*command, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir), **env))
    assert proc.returncode == 0, proc.stderr
    paranoid = int(open("/proc/sys/kernel/perf_event_paranoid").read())
    if paranoid <= 2:
        assert proc.stderr == ""
    else:
        assert proc.stderr.count("perf events are not permitted") == 1
    import etwtrace

    samples = [e for e in etwtrace.read(str(trace_dir)) if e.name == "SampledProfile"]
    assert sum(1 for e in samples if chain(e) and chain(e)[0][0] == "leaf") >= 10


def test_kernel_frames_of_a_syscall_heavy_function(run_sampled):
    if os.geteuid() != 0 and int(open("/proc/sys/kernel/perf_event_paranoid").read()) > 1:
        pytest.skip("kernel call chains need perf_event_paranoid <= 1 or root")
    source = """\
    import os

    def syscalls():
        fd = os.open("/dev/null", os.O_WRONLY)
        for _ in range(100000):
            os.write(fd, b"x" * 64)
            os.stat("/")
        os.close(fd)

    syscalls()
    """
    run = run_sampled(source, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    with_kernel = []
    for e in run.events():
        kinds = ["k" if f.module == "[kernel.kallsyms]" else "p" if f.is_python else "n" for f in e.stack]
        if "k" in kinds and "p" in kinds:  # (start-up and shutdown run no Python frame)
            # kernel -> libc/interpreter -> Python, leaf first, never interleaved
            assert "".join(kinds).lstrip("k").find("k") == -1, kinds
            with_kernel.append(e)
    assert len(with_kernel) >= 10
    assert all(chain(e)[0][0] == "syscalls" and chain(e)[1:] == [("<module>", 10)] for e in with_kernel), \
        [chain(e) for e in with_kernel if chain(e)[0][0] != "syscalls" or chain(e)[1:] != [("<module>", 10)]][:3]
    assert any(f.name and f.name.startswith(("do_syscall", "entry_SYSCALL", "__x64_sys", "ksys_write", "vfs_"))
               for e in with_kernel for f in e.stack)
