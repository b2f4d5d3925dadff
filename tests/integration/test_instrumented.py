"""Instrumented mode end to end: real `python -m etwtrace --instrument -- script.py` runs,
traces written through ETWTRACE_TRACE_DIR, decoded with etwtrace.read().

The stack at each _mark_stack is rebuilt from the push/pop events (every pop must match the
last push of its thread) and also read from Event.stack; both must agree with the expected
stack, resolved to the script's own functions as upstream's tests do.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import etwtrace
from etwtrace._read import TraceFile

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "instrumented"
# Upstream's scenarios (basic, by_arg, threaded) are shared by every mode's tests.
UPSTREAM_SCRIPTS = SCRIPTS.parent


def script_path(name):
    own = SCRIPTS / name
    return own if own.exists() else UPSTREAM_SCRIPTS / name
PUSH, POP = "PythonFunctionPush", "PythonFunctionPop"


def run(tmp_path, script, *args, check=True, env=None):
    trace_dir = tmp_path / "traces"
    trace_dir.mkdir(exist_ok=True)
    full_env = dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir))
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "etwtrace", "--instrument", "--quiet", "--", str(script_path(script)), *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc, sorted(trace_dir.glob("*.etwtrace"))


class Analysis:
    """Replays one trace: per-thread stacks, marks, counts; checks every pop."""

    def __init__(self, path, source=None):
        self.path = path
        self.info = TraceFile(path).info
        self.functions = {}
        self.stacks = {}
        self.samples = []  # (mark, thread_id, stack of names filtered to `source`, Event.stack names)
        self.pushes = Counter()
        self.pops = Counter()
        self.events = list(etwtrace.read(path))
        last_ts = 0
        for e in self.events:
            assert e.timestamp >= last_ts, "events must come in timestamp order"
            last_ts = e.timestamp
            if e.name == "PythonFunction":
                self.functions[e["FunctionID"]] = e
            elif e.name == PUSH:
                stack = self.stacks.setdefault(e.thread_id, [])
                if stack:
                    assert e["Caller"] == stack[-1], "Caller must be the function below on the stack"
                stack.append(e["FunctionID"])
                self.pushes[self.name(e["FunctionID"])] += 1
            elif e.name == POP:
                stack = self.stacks.get(e.thread_id)
                assert stack, f"pop without push on thread {e.thread_id}"
                assert stack[-1] == e["FunctionID"], "pop must match the last push of its thread"
                stack.pop()
                self.pops[self.name(e["FunctionID"])] += 1
            elif e.name == "PythonStackSample":
                rebuilt = [self.name(i) for i in reversed(self.stacks.get(e.thread_id, [])) if self.in_source(i, source)]
                from_event = [f.name for f in e.stack if source is None or f.source_file == source]
                self.samples.append((e["Mark"], e.thread_id, rebuilt, from_event))
        open_frames = {tid: [self.name(i) for i in stack] for tid, stack in self.stacks.items() if stack}
        assert not open_frames, f"every push needs its pop by the end of the trace: {open_frames}"
        assert self.info["unmatched_pops"] == 0
        assert self.info["lost_events"] == 0
        assert self.info["sequence_gaps"] == 0
        assert self.info["error"] == ""

    def name(self, function_id):
        f = self.functions.get(function_id)
        return f["Name"] if f is not None else f"?{function_id}"

    def in_source(self, function_id, source):
        if source is None:
            return True
        f = self.functions.get(function_id)
        return f is not None and f["SourceFile"] == source

    def stacks_at_marks(self):
        for mark, _tid, rebuilt, from_event in self.samples:
            assert rebuilt == from_event, (mark, rebuilt, from_event)
        return [(mark, rebuilt) for mark, _tid, rebuilt, _ in self.samples]


def analyse(tmp_path, script, *args):
    _, files = run(tmp_path, script, *args)
    assert len(files) == 1, files
    return Analysis(files[0], str(script_path(script)))


def test_basic(tmp_path):
    a = analyse(tmp_path, "basic.py")
    names = {f["Name"] for f in a.functions.values() if f["SourceFile"] == str(UPSTREAM_SCRIPTS / "basic.py")}
    assert names == {"<module>", "a", "b"}
    assert [s for _, s in a.stacks_at_marks()] == [["b", "a", "<module>"]]
    assert a.info["complete"] and a.info["clock"] == "CLOCK_MONOTONIC" and a.info["pid"] > 0
    assert a.info["python_version"] == sys.version
    threads = [e for e in a.events if e.name == "PythonThread"]
    assert [t.opcode for t in threads] == ["Start", "Stop"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["a"], [["a", "<module>"]]),
        (["a", "b"], [["a", "<module>"], ["b", "a", "<module>"]]),
        (["a", "b", "c"], [["a", "<module>"], ["b", "a", "<module>"], ["c", "b", "a", "<module>"]]),
    ],
)
def test_by_arg(tmp_path, args, expected):
    a = analyse(tmp_path, "by_arg.py", *args)
    assert [s for _, s in a.stacks_at_marks()] == expected


def test_caller_line(tmp_path):
    a = analyse(tmp_path, "by_arg.py", "a", "b", "c")
    script = str(UPSTREAM_SCRIPTS / "by_arg.py")
    lines = UPSTREAM_SCRIPTS.joinpath("by_arg.py").read_text().splitlines()
    seen = {}
    for e in a.events:
        if e.name == PUSH and a.in_source(e["FunctionID"], script) and a.in_source(e["Caller"], script):
            seen[a.name(e["FunctionID"])] = lines[e["CallerLine"] - 1].strip()
    assert seen == {"a": "a()", "b": "b()", "c": "c()"}


def test_threaded(tmp_path):
    a = analyse(tmp_path, "threaded.py")
    stacks = {tuple(s) for _, s in a.stacks_at_marks()}
    assert stacks == {("a",), ("b", "a"), ("c", "b", "a")}
    marks_by_thread = Counter(tid for _, tid, _, _ in a.samples)
    assert len(marks_by_thread) == 10 and set(marks_by_thread.values()) == {1}
    starts = [e.thread_id for e in a.events if e.name == "PythonThread" and e.opcode == "Start"]
    stops = [e.thread_id for e in a.events if e.name == "PythonThread" and e.opcode == "Stop"]
    assert len(set(starts)) == 11 and sorted(starts) == sorted(stops)


def test_threads_started_after_enable(tmp_path):
    a = analyse(tmp_path, "threads_late.py")
    stacks = [s for _, s in a.stacks_at_marks()]
    assert sorted(stacks) == [["in_thread"]] * 4
    assert len({tid for _, tid, _, _ in a.samples}) == 4


def test_c_calls(tmp_path):
    a = analyse(tmp_path, "ccalls.py")
    c_functions = {f["Name"]: f for f in a.functions.values() if not f["IsPythonCode"]}
    assert c_functions["len"]["SourceFile"] == "builtins"
    assert c_functions["compress"]["SourceFile"] == "zlib"
    assert a.pushes["compress"] == a.pops["compress"] == 5  # zlib.compress
    # len() is called 5 times directly from main() (plus whatever the launcher does).
    script = str(SCRIPTS / "ccalls.py")
    main_id = next(i for i, f in a.functions.items() if f["Name"] == "main" and f["SourceFile"] == script)
    len_from_main = [e for e in a.events if e.name == PUSH and a.name(e["FunctionID"]) == "len" and e["Caller"] == main_id]
    assert len(len_from_main) == 5
    # Our own write_mark is not recorded: the stack at the mark ends in the script's function.
    assert [s for _, s in a.stacks_at_marks()] == [["do_compress", "main", "<module>"]] * 5
    assert "write_mark" not in a.pushes


def test_generators(tmp_path):
    a = analyse(tmp_path, "generators.py")
    assert [s for _, s in a.stacks_at_marks()] == [
        ["gen", "consume", "<module>"],
        ["consume", "<module>"],
        ["gen", "consume", "<module>"],
        ["consume", "<module>"],
        ["gen", "consume", "<module>"],
        ["consume", "<module>"],
        ["gen", "consume", "<module>"],
    ]
    # Each resume is a push and each suspension a pop: 3 values + exhaustion, 1 + close()
    # (3.13's close() of a generator paused outside any try block does not resume it).
    expected = 5 if sys.version_info >= (3, 13) else 6
    assert a.pushes["gen"] == a.pops["gen"] == expected


def test_asyncio_tasks(tmp_path):
    a = analyse(tmp_path, "async_tasks.py")
    got = a.stacks_at_marks()
    assert sorted(got[:4]) == [
        ("leaf-a", ["leaf", "worker", "<module>"]),
        ("leaf-a", ["leaf", "worker", "<module>"]),
        ("leaf-b", ["leaf", "worker", "<module>"]),
        ("leaf-b", ["leaf", "worker", "<module>"]),
    ]
    assert got[4] == ("main", ["main", "<module>"])
    # Coroutines suspended at an await were popped: "main" never sits under a running worker.
    assert a.pushes["leaf"] == a.pops["leaf"] and a.pushes["leaf"] >= 6


def test_exceptions(tmp_path):
    a = analyse(tmp_path, "exceptions.py")
    assert a.stacks_at_marks() == [
        ("caught", ["catcher", "<module>"]),
        ("after-c-raise", ["c_fail", "catcher", "<module>"]),
        ("module", ["<module>"]),
    ]
    assert a.pushes["fail"] == a.pops["fail"] == 4
    assert a.pushes["decompress"] == a.pops["decompress"] == 1


def test_recursion(tmp_path):
    a = analyse(tmp_path, "recursion.py", "120")
    ((mark, stack),) = a.stacks_at_marks()
    assert stack == ["down"] * 121 + ["<module>"]


def test_exact_count(tmp_path):
    n = 2000
    a = analyse(tmp_path, "exact_count.py", str(n))
    script = str(SCRIPTS / "exact_count.py")
    counts = Counter()
    stacks = {}
    for e in a.events:
        # Count the script's functions, and C functions called directly from the script.
        if e.name == PUSH:
            counted = a.in_source(e["FunctionID"], script) or a.in_source(e["Caller"], script)
            stacks.setdefault(e.thread_id, []).append(counted)
        elif e.name == POP:
            counted = stacks[e.thread_id].pop()
        else:
            continue
        if counted:
            counts[e.name, a.name(e["FunctionID"])] += 1
    assert counts == {
        (PUSH, "<module>"): 1, (POP, "<module>"): 1,
        (PUSH, "main"): 1, (POP, "main"): 1,
        (PUSH, "f"): n, (POP, "f"): n,
        (PUSH, "g"): 2 * n, (POP, "g"): 2 * n,
        (PUSH, "len"): n + 1, (POP, "len"): n + 1,  # + len(sys.argv) at module level
    }


def test_fork_child_writes_its_own_file(tmp_path):
    _, files = run(tmp_path, "forks.py")
    assert len(files) == 2
    script = str(SCRIPTS / "forks.py")
    analyses = {TraceFile(f).info["parent_pid"]: Analysis(f, script) for f in files}
    assert set(analyses) == {0, analyses[0].info["pid"]}
    parent, child = analyses[0], next(v for k, v in analyses.items() if k)
    assert parent.stacks_at_marks() == [("parent", ["parent_work", "spawn", "<module>"])]
    assert child.stacks_at_marks() == [("child", ["child_work", "spawn", "<module>"])]
    assert parent.info["complete"] and child.info["complete"]  # os._exit() flushed the child


@pytest.mark.parametrize("how, returncode", [("exit", 3), ("raise", 1), ("sigint", -signal.SIGINT),
                                             ("sigterm-handled", 4)])
def test_flushed_on_exit_paths(tmp_path, how, returncode):
    proc, files = run(tmp_path, "endings.py", how, check=False)
    assert proc.returncode == returncode, proc.stderr
    (path,) = files
    a = Analysis(path, str(SCRIPTS / "endings.py"))
    assert a.info["complete"]
    assert a.stacks_at_marks() == [("work", ["work", "<module>"])]


def test_sigkill_leaves_readable_file(tmp_path):
    trace_dir = tmp_path / "traces"
    trace_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "etwtrace", "--instrument", "--quiet", "--", str(SCRIPTS / "endings.py"), "spin"],
        env=dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "spinning"
        time.sleep(0.5)  # > the 100 ms flush interval: several chunks reach the file
    finally:
        proc.kill()
        proc.wait()
    (path,) = trace_dir.glob("*.etwtrace")
    info = TraceFile(path).info
    assert not info["complete"] and info["error"] == "" and info["unmatched_pops"] == 0
    ticks = [e for e in etwtrace.read(path, names={PUSH}) if e.stack and e.stack[0].name == "spin.<locals>.tick"]
    assert len(ticks) >= 1000


def test_trace_path_option_and_filters(tmp_path):
    target = tmp_path / "named.etwtrace"
    code = f"""
import etwtrace, os
def keep(): pass
def skip(): pass
t = etwtrace.InstrumentedTracer(trace_path={str(target)!r})
t.ignore(__file__)
with t:
    keep()
    print(etwtrace._etwtrace._instrumented_trace_path())
"""
    script = tmp_path / "api.py"
    script.write_text(code)
    target.write_bytes(b"old")  # a path the user names is overwritten
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(target)
    names = {e["Name"] for e in etwtrace.read(target, names={"PythonFunction"})}
    assert "keep" not in names and "<module>" not in names


def test_default_file_is_never_overwritten(tmp_path):
    code = "import etwtrace, os\nwith etwtrace.InstrumentedTracer(): pass\nprint(os.getpid())\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "ETWTRACE_TRACE_DIR"})
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    default = tmp_path / f"etwtrace-{pid}.etwtrace"
    assert default.exists() and oct(default.stat().st_mode & 0o777) == "0o600"
    # A pre-existing file with the default name (e.g. planted in /tmp) is left alone.
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    code2 = ("import etwtrace, os, sys\n"
             "os.symlink(sys.argv[1], 'etwtrace-%d.etwtrace' % os.getpid())\n"
             "with etwtrace.InstrumentedTracer(): pass\n"
             "print(etwtrace._etwtrace._instrumented_trace_path())\n")
    out = subprocess.run([sys.executable, "-c", code2, str(victim)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "keep me"


def test_read_filters_and_directory(tmp_path):
    _, files = run(tmp_path, "threaded.py")
    (path,) = files
    everything = list(etwtrace.read(path))
    tids = {e.thread_id for e in everything}
    one = sorted(tids)[1]
    assert {e.thread_id for e in etwtrace.read(path, thread_id=one)} == {one}
    assert {e.name for e in etwtrace.read(path, names={PUSH})} == {PUSH}
    assert list(etwtrace.read(path, pid=everything[0].pid + 1)) == []
    from_dir = list(etwtrace.read(path.parent))
    assert len(from_dir) == len(everything)


def test_truncated_file_reads_to_last_record(tmp_path):
    _, files = run(tmp_path, "exact_count.py", "30000")  # several chunks
    data = files[0].read_bytes()
    full = len(list(etwtrace.read(files[0])))
    cut = tmp_path / "cut.etwtrace"
    cut.write_bytes(data[: len(data) * 2 // 3])
    info = TraceFile(cut).info
    assert info["truncated"] and not info["complete"]
    assert 0 < len(list(etwtrace.read(cut))) < full


def test_frames_open_at_disable_are_closed(tmp_path):
    """disable() inside traced functions, with another thread mid-call: each thread's pushes
    still balance, the pops coming at disable() (API use, no launcher)."""
    trace = tmp_path / "api.etwtrace"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "open_at_disable.py"), str(trace)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    analysis = Analysis(trace, str(SCRIPTS / "open_at_disable.py"))  # asserts the balance
    assert analysis.pushes["spin.<locals>.inner"] == analysis.pops["spin.<locals>.inner"] == 1
    assert analysis.pushes["main"] == analysis.pops["main"] == 1
    assert dict(analysis.stacks_at_marks()) == {"inside": ["main", "<module>"]}


def test_threads_started_with_raw_thread_module(tmp_path):
    proc, files = run(tmp_path, "raw_thread.py")
    plain = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", str(script_path("raw_thread.py"))],
                           capture_output=True, text=True, timeout=60)
    assert proc.stdout == plain.stdout == "[1, 2]\n"
    # _thread's own report of the failing thread, the same traced and untraced
    assert "ValueError: worker 2 failed" in plain.stderr
    assert proc.stderr.count("in thread started by") == 1
    assert [line for line in proc.stderr.splitlines() if "0x" not in line] == \
        [line for line in plain.stderr.splitlines() if "0x" not in line]
    analysis = Analysis(files[0], str(script_path("raw_thread.py")))
    assert sorted(analysis.stacks_at_marks()) == [("raw1", ["leaf", "worker"]), ("raw2", ["leaf", "worker"])]
