"""A program's own profiler (cProfile, sys.setprofile) under instrumented tracing: its output
must be the untraced run's byte for byte. On 3.12+ (sys.monitoring, a tool id other than
cProfile's PROFILER_ID) the trace also still records every later call of work(); on 3.9 -
3.11, where the program's profile function displaces ours (one slot per thread), the trace
must say it missed events (lost_events > 0), never complete with 0 lost."""

import os
import subprocess
import sys
from pathlib import Path

import etwtrace
from etwtrace._read import TraceFile

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "own_profiler.py"


def run(tmp_path, traced):
    trace_dir = tmp_path / ("traces" if traced else "untraced")
    trace_dir.mkdir()
    launcher = ["-m", "etwtrace", "--instrument", "--quiet", "--"] if traced else []
    proc = subprocess.run(
        [sys.executable, *launcher, str(SCRIPT)],
        cwd=tmp_path,
        env=dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir)),
        capture_output=True,
        timeout=60,
    )
    return proc, sorted(trace_dir.glob("*.etwtrace"))


def test_own_profiler_output_unchanged(tmp_path):
    untraced, _ = run(tmp_path, False)
    traced, files = run(tmp_path, True)
    assert untraced.returncode == 0, untraced.stderr
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, untraced.stdout, untraced.stderr)
    assert len(files) == 1
    if sys.version_info >= (3, 12):
        ids = {e["FunctionID"] for e in etwtrace.read(files[0]) if e.name == "PythonFunction" and e["Name"] == "work"}
        pushes = sum(1 for e in etwtrace.read(files[0]) if e.name == "PythonFunctionPush" and e["FunctionID"] in ids)
        assert pushes == 3000
    else:
        assert TraceFile(files[0]).info["lost_events"] >= 1


def test_own_profile_function_sees_what_it_sees_untraced(tmp_path):
    # Our hook saw the installing call start; the program's hook must not get its return.
    script = SCRIPT.parent / "own_profile_install.py"
    results = []
    for launcher in ([], ["-m", "etwtrace", "--instrument", "--quiet", "--"]):
        proc = subprocess.run([sys.executable, *launcher, str(script)], cwd=tmp_path, capture_output=True,
                              timeout=60, env=dict(os.environ, ETWTRACE_TRACE_DIR=str(tmp_path)))
        results.append((proc.returncode, proc.stdout.decode(), proc.stderr.decode()))
    untraced, traced = results
    assert untraced[0] == 0, untraced[2]
    assert "('c_call', 'len'), ('c_return', 'len')" in untraced[1]
    assert traced == untraced
