"""The stress suite: every program in tests/stress/programs/ runs untraced, under
`python -m etwtrace --stack --quiet --` and under `--instrument`, each in its own subprocess;
the traced runs' stdout, stderr and exit status must be the untraced run's, byte for byte, and
every instrumented trace file must be whole (complete, nothing lost), except where a program's
own profiler displaces ours on 3.9 - 3.11 (then the trace must say it lost events).

CI size by default (seconds per program); ETWTRACE_STRESS=long runs the same programs at soak
size (docs/reliability.md). Known defects still being fixed are strict xfails naming the defect:
the day the fix lands they fail, and the mark is removed.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etwtrace._read import TraceFile

PROGRAMS = Path(__file__).resolve().parent / "programs"
LONG = os.environ.get("ETWTRACE_STRESS") == "long"
TIMEOUT = 3600 if LONG else 180
SANITIZED = bool(os.environ.get("ETWTRACE_SANITIZED"))
MODES = {"stack": ["--stack"], "instrumented": ["--instrument"]}
V = sys.version_info[:2]


def known_defect(program, mode):
    """The reason a (program, mode) is a known, not yet fixed defect on this CPython, or None
    (none is open now)."""
    return None


def programs():
    return sorted(p.stem for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))


def applicable(program):
    if program == "subinterpreters" and V < (3, 12):
        return "sub-interpreters with their own GIL are 3.12+"
    if program == "own_tracers":
        try:
            import coverage  # noqa: F401  (the program's own coverage.py user)
        except ImportError:
            pytest.fail("own_tracers needs coverage.py in the test environment: pip install coverage")
    return None


def start(program, mode, tmp_path):
    trace_dir = tmp_path / f"traces-{mode}"
    jit_dir = tmp_path / f"jit-{mode}"
    trace_dir.mkdir()
    jit_dir.mkdir()
    launcher = ["-m", "etwtrace", *MODES[mode], "--quiet", "--"] if mode in MODES else []
    env = dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir), JITDUMPDIR=str(jit_dir), PYTHONHASHSEED="0")
    env.pop("ETWTRACE_TYPE", None)
    # A session of its own: on a timeout the whole process group goes, the program's forked
    # children too, which would otherwise hold the output pipes open and keep communicate()
    # waiting for good.
    proc = subprocess.Popen([sys.executable, *launcher, str(PROGRAMS / f"{program}.py")], cwd=PROGRAMS,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    return proc, trace_dir


def finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return ("timed out", out, err)
    return (proc.returncode, out, err)


def run_pair(program, mode, tmp_path):
    """The untraced and the traced run, side by side. Under the sanitizers (LD_PRELOADed ASan), a
    program that forks while another of its threads allocates can deadlock untraced (ASan's
    allocator lock is not fork-safe: seen once, in multiprocessing_start_methods' untraced
    run): then the pair runs once more, in a fresh directory."""
    for attempt in (1, 2):
        attempt_dir = tmp_path / f"attempt-{attempt}"
        attempt_dir.mkdir()
        untraced_proc, _ = start(program, "untraced", attempt_dir)
        traced_proc, trace_dir = start(program, mode, attempt_dir)
        untraced, traced = finish(untraced_proc), finish(traced_proc)
        if untraced[0] != "timed out" or not SANITIZED or attempt == 2:
            return untraced, traced, trace_dir
    raise AssertionError("unreachable")


def displaces_our_profiler(program):
    # 3.9 - 3.11 have one profile slot per thread: sys.setprofile / cProfile replace ours.
    return program == "own_tracers" and V < (3, 12)


def check_traces(program, trace_dir):
    files = sorted(trace_dir.glob("*.etwtrace"))
    assert files, f"{program}: no trace file written"
    for path in files:
        info = TraceFile(path).info
        assert info["complete"] and not info["error"], (path.name, info)
        if displaces_our_profiler(program):
            assert info["lost_events"] >= 1, (path.name, info)
        else:
            assert info["lost_events"] == 0 and info["unmatched_pops"] == 0, (path.name, info)


def cases():
    for program in programs():
        for mode in MODES:
            defect = known_defect(program, mode)
            marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
            yield pytest.param(program, mode, id=f"{program}-{mode}", marks=marks)


@pytest.mark.parametrize("program,mode", list(cases()))
def test_traced_run_is_the_untraced_run(program, mode, tmp_path):
    reason = applicable(program)
    if reason:
        pytest.skip(reason)
    untraced, traced, trace_dir = run_pair(program, mode, tmp_path)
    assert untraced[0] != "timed out", f"{program} untraced timed out"
    assert traced[0] == untraced[0], f"exit status {traced[0]} traced, {untraced[0]} untraced; stderr:\n{traced[2].decode(errors='replace')}"
    assert traced[1].decode(errors="replace") == untraced[1].decode(errors="replace"), "stdout differs"
    assert traced[2].decode(errors="replace") == untraced[2].decode(errors="replace"), "stderr differs"
    if mode == "instrumented":
        check_traces(program, trace_dir)
