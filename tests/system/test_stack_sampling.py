"""Stack sampling mode end to end, with real perf, on the interpreter running pytest.

Each test runs a target program from tests/scripts/ in a subprocess under
`python -m etwtrace --stack` (usually inside `perf record -k 1 --call-graph dwarf`), then
`perf inject --jit` and `perf script`, and checks what perf shows. Helpers: perfutil.py.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perfutil  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
PY = sys.version_info[:2]


def need_perf():
    problem = perfutil.perf_problem()
    if problem:
        pytest.skip(problem)


def need_usdt():
    need_perf()
    problem = perfutil.tracefs_problem()
    if problem:
        pytest.skip(problem)


def traced(script, *args):
    return [sys.executable, "-m", "etwtrace", "--stack", "--quiet", "--", str(SCRIPTS / script), *args]


@pytest.fixture
def jitdir(tmp_path, monkeypatch):
    """Jitdump files (and the jitted-*.so perf inject makes from them) go to a private dir."""
    d = tmp_path / "jit"
    d.mkdir()
    monkeypatch.setenv("JITDUMPDIR", str(d))
    return d


@pytest.fixture
def cleanup_maps():
    """Removes the perf maps of the processes a test traced (pids added by the test)."""
    pids = set()
    yield pids
    for pid in pids:
        perfutil.remove_symbol_files(pid)


def record_marks(tmp_path, cmd, cleanup_maps, probes=("stack_sample",), call_graph="dwarf"):
    """Runs `cmd` under perf recording the given USDT probes; returns (samples, perf run)."""
    library = perfutil.etwtrace_library()
    data = tmp_path / "perf.data"
    with perfutil.usdt_events(library, probes) as events:
        run = perfutil.record(cmd, data, events=events, call_graph=call_graph)
    assert run.returncode == 0, run.stderr
    samples = perfutil.parse_script(perfutil.script(perfutil.inject_jit(data)))
    cleanup_maps.update(s.pid for s in samples)
    return samples, run


# ---- upstream's scenarios, checked through perf --------------------------------------------------

def test_basic_functions_are_published_and_on_the_stack(tmp_path, jitdir, cleanup_maps):
    need_usdt()
    samples, _ = record_marks(tmp_path, traced("basic.py"), cleanup_maps)
    marks = [s for s in samples if perfutil.event_name(s) == "stack_sample"]
    assert len(marks) == 1
    script = str(SCRIPTS / "basic.py")
    assert perfutil.python_stack(marks[0], script) == ["b", "a", "<module>"]
    # Exactly the script's three functions were published, each with its own thunk.
    lines = Path(f"/tmp/perf-{marks[0].pid}.map").read_text().splitlines()
    ours = [line.split(" ", 2) for line in lines if line.endswith(":" + script)]
    assert sorted(name for _, _, name in ours) == sorted(f"py::{n}:{script}" for n in ("<module>", "a", "b"))
    assert len({start for start, _, _ in ours}) == 3


@pytest.mark.parametrize("args", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_by_arg_stacks_at_each_mark(tmp_path, jitdir, cleanup_maps, args):
    need_usdt()
    samples, _ = record_marks(tmp_path, traced("by_arg.py", *args), cleanup_maps)
    script = str(SCRIPTS / "by_arg.py")
    stacks = [perfutil.python_stack(s, script) for s in samples if perfutil.event_name(s) == "stack_sample"]
    expected = [["a", "<module>"], ["b", "a", "<module>"], ["c", "b", "a", "<module>"]]
    assert stacks == expected[: len(args)]


def test_threaded_stacks(tmp_path, jitdir, cleanup_maps):
    need_usdt()
    samples, _ = record_marks(tmp_path, traced("threaded.py"), cleanup_maps)
    script = str(SCRIPTS / "threaded.py")
    marks = [s for s in samples if perfutil.event_name(s) == "stack_sample"]
    assert len(marks) == 10
    assert {tuple(perfutil.python_stack(s, script)) for s in marks} == {("a",), ("b", "a"), ("c", "b", "a")}
    assert len({s.tid for s in marks}) > 1, "marks came from the worker threads"


def test_no_events_runs_unchanged(tmp_path):
    plain = subprocess.run([sys.executable, str(SCRIPTS / "no_events.py")], capture_output=True, text=True)
    run = subprocess.run(traced("no_events.py"), capture_output=True, text=True)
    assert (run.returncode, run.stdout, run.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert run.stdout == "Inside b()\n"


# ---- probes ---------------------------------------------------------------------------------

def test_probes_are_in_the_extension_module():
    notes = subprocess.run(["readelf", "-n", perfutil.etwtrace_library()], capture_output=True, text=True).stdout
    names = set(re.findall(r"Provider: etwtrace\s+Name: (\w+)", notes))
    assert {"thread", "function", "mark", "stack_sample"} <= names


def test_mark_function_and_thread_probes_fire(tmp_path, jitdir, cleanup_maps):
    need_usdt()
    samples, run = record_marks(tmp_path, traced("marks.py"), cleanup_maps,
                                probes=("mark", "stack_sample", "function", "thread"), call_graph="dwarf")
    assert run.stdout == "marked\n"
    by_event = {}
    for s in samples:
        by_event.setdefault(perfutil.event_name(s), []).append(s)
    # mark(): kind 0; mark_range(): start (1) then stop (2), around the stack sample.
    marks = [perfutil.trace_args(s) for s in by_event["mark"]]
    assert [(m["Mark"], int(m["Kind"])) for m in marks] == [("plain mark", 0), ("a range", 1), ("a range", 2)]
    assert [perfutil.trace_args(s)["Mark"] for s in by_event["stack_sample"]] == ["stack here"]
    script = str(SCRIPTS / "marks.py")
    assert [perfutil.python_stack(s, script) for s in by_event["stack_sample"]] == [["inner", "outer", "<module>"]]
    # One `function` event per published function, the script's three among them.
    functions = [perfutil.trace_args(s) for s in by_event["function"]]
    assert {f["Name"] for f in functions if f["SourceFile"] == script} == {"<module>", "inner", "outer"}
    assert len({f["FunctionID"] for f in functions}) == len(functions)
    assert len(by_event.get("thread", [])) >= 1


# ---- mixed native/Python stacks -------------------------------------------------------------------

def test_zlib_mixed_stack_in_dwarf_mode(tmp_path, jitdir, cleanup_maps):
    need_perf()
    data = tmp_path / "perf.data"
    run = perfutil.record(traced("mixed_zlib.py", "1.0"), data, events=["cpu-clock"], frequency=499,
                          call_graph="dwarf,32768")
    assert run.returncode == 0, run.stderr
    samples = perfutil.parse_script(perfutil.script(perfutil.inject_jit(data)))
    cleanup_maps.update(s.pid for s in samples)
    script = str(SCRIPTS / "mixed_zlib.py")
    in_libz = [s for s in samples if s.frames and "libz" in s.frames[0].dso]
    assert len(in_libz) >= 50, f"only {len(in_libz)} samples in libz"
    good = 0
    for s in in_libz:
        py_positions = [i for i, f in enumerate(s.frames) if f.python]
        libz_positions = [i for i, f in enumerate(s.frames) if "libz" in f.dso]
        if (perfutil.python_stack(s, script) == ["compress", "work", "<module>"]
                and py_positions and max(libz_positions) < min(py_positions)):
            good += 1
    assert good / len(in_libz) >= 0.95, f"{good} of {len(in_libz)} libz samples unwound to the Python callers"


# ---- programs behave exactly as untraced ------------------------------------------------------------

@pytest.mark.parametrize("script", ["generators_asyncio.py", "exceptions_prog.py", "forks.py", "threads_prog.py"])
def test_program_output_is_unchanged(script, cleanup_maps):
    plain = subprocess.run([sys.executable, str(SCRIPTS / script)], capture_output=True, text=True, cwd=SCRIPTS)
    run = subprocess.run(traced(script), capture_output=True, text=True, cwd=SCRIPTS)
    assert run.stdout == plain.stdout
    assert run.stderr == plain.stderr
    assert run.returncode == plain.returncode
    if script == "exceptions_prog.py":
        assert run.returncode == 1 and "ValueError: wrapped" in run.stderr


def _recursion(mode):
    env = dict(os.environ, ETWTRACE_TEST_MODE=mode)
    run = subprocess.run([sys.executable, str(SCRIPTS / "recursion.py")], capture_output=True, text=True, env=env)
    return run.returncode, run.stdout, run.stderr


def test_recursion_limit_is_unchanged():
    traced_run = _recursion("stack")
    # Also on 3.12, where any PEP 523 hook (a bare one, `-X perf`) makes RecursionError come
    # near depth 750: the hook credits back the C recursion units (docs/reliability.md).
    assert traced_run == _recursion("")
    assert "error maximum recursion depth exceeded" in traced_run[1]


def test_fork_child_writes_its_own_symbol_files(tmp_path, jitdir, cleanup_maps):
    pid_file = tmp_path / "child.pid"
    proc = subprocess.Popen(traced("forks.py", str(pid_file)), stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    assert proc.returncode == 0 and "parent done" in out
    child = int(pid_file.read_text())
    parent = proc.pid
    cleanup_maps.update({child, parent})
    script = str(SCRIPTS / "forks.py")
    parent_map = Path(f"/tmp/perf-{parent}.map").read_text()
    child_map = Path(f"/tmp/perf-{child}.map").read_text()
    # Inherited thunks are re-published in the child's files; child-only ones stay out of the parent's.
    assert f"py::fork_once:{script}" in child_map
    assert f"py::<module>:{script}" in child_map
    assert f"py::child_only:{script}" in child_map
    assert f"py::child_only:{script}" not in parent_map
    assert (jitdir / f"jit-{child}.dump").stat().st_size > 40
    assert b"py::fork_once" in (jitdir / f"jit-{child}.dump").read_bytes()
    assert b"py::child_only" not in (jitdir / f"jit-{parent}.dump").read_bytes()
    for path in (f"/tmp/perf-{child}.map", jitdir / f"jit-{child}.dump"):
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_enable_disable_stress_and_threads_started_before_enable(tmp_path, cleanup_maps):
    out_file = tmp_path / "map.path"
    run = subprocess.run([sys.executable, str(SCRIPTS / "toggle.py"), str(out_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "toggled 55 3 True\n"
    perf_map = Path(out_file.read_text())
    cleanup_maps.add(int(re.search(r"perf-(\d+)", str(perf_map)).group(1)))
    script = str(SCRIPTS / "toggle.py")
    text = perf_map.read_text()
    # spin_in_thread ran only in threads started before enable(): they are traced too.
    assert text.count(f"py::spin_in_thread:{script}") == 1
    assert text.count(f"py::disable_from_inside:{script}") == 1


# ---- other hooks, file formats ----------------------------------------------------------------

def test_refuses_to_install_over_another_eval_frame_hook():
    code = (
        "import etwtrace\n"
        "from etwtrace import _etwtrace\n"
        "t = etwtrace.StackSamplingTracer()\n"
        "t.enable(); t.disable()\n"
        "_etwtrace._bench_noop_hook(True)  # works: disable() removed our hook\n"
        "try:\n"
        "    etwtrace.StackSamplingTracer().enable()\n"
        "except RuntimeError as ex:\n"
        "    print('refused:', ex)\n"
        "_etwtrace._bench_noop_hook(False)\n"
        "t.enable(); t.disable(); print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "refused: etwtrace: another frame-evaluation hook (PEP 523) is already installed" in run.stdout
    assert run.stdout.endswith("ok\n")


if sys.version_info >= (3, 12):  # -X perf exists from 3.12 on (defined, not skipped, so CI counts it)

    def test_refuses_to_install_over_x_perf():
        proc = subprocess.Popen([sys.executable, "-X", "perf", "-m", "etwtrace", "--stack", "--quiet", "--",
                                 str(SCRIPTS / "no_events.py")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        stdout, stderr = proc.communicate(timeout=60)
        perfutil.remove_symbol_files(proc.pid)  # -X perf's own /tmp/perf-<pid>.map
        run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert run.returncode != 0
        assert "another frame-evaluation hook" in run.stderr
        assert "python -X perf" in run.stderr
        assert run.stderr.startswith("etwtrace: another frame-evaluation hook") and run.stderr.count("\n") == 1
        assert "Inside b()" not in run.stdout


def test_perf_map_format(cleanup_maps):
    run = subprocess.run([sys.executable, "-c",
                          "import etwtrace, os\n"
                          "t = etwtrace.StackSamplingTracer(); t.enable()\n"
                          "class K:\n"
                          "    def meth(self):\n"
                          "        return (lambda: 1)()\n"
                          "K().meth()\n"
                          "import json; json.JSONEncoder().encode([1])\n"
                          "t.disable(); print(os.getpid())"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    pid = int(run.stdout)
    cleanup_maps.add(pid)
    path = Path(f"/tmp/perf-{pid}.map")
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    starts = []
    for line in lines:
        m = re.fullmatch(r"([0-9a-f]+) ([0-9a-f]+) py::(\S+?):(.+)", line)
        assert m, line
        assert int(m.group(2), 16) == 16
        starts.append(int(m.group(1), 16))
    names = {line.split(" ", 2)[2] for line in lines}
    qualname = "K.meth" if PY >= (3, 11) else "meth"
    assert f"py::{qualname}:<string>" in names
    import json  # a module loaded before enable(): qualified names on every version
    assert f"py::JSONEncoder.encode:{json.encoder.__file__}" in names
    assert len(set(starts)) == len(starts)
    starts.sort()
    assert all(b - a >= 96 for a, b in zip(starts, starts[1:])), "thunks are spaced for perf's unwind view"
