"""Enable/disable cycling under load (tests/scripts/reliability/enable_cycling.py): 12 threads
recurse, run generators and exec() while the main thread enables and disables tracing, also
from inside a traced function and from another thread. Each case runs in its own subprocess;
its output must be the untraced run's, byte for byte, and (instrumented) no thread's stack
rebuilt from a trace may be deeper than the deepest stack the program really had."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import etwtrace
from etwtrace._read import TraceFile

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "enable_cycling.py"
CYCLES = "150"


def run(tmp_path, mode):
    trace_dir = tmp_path / f"traces-{mode}"
    trace_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), mode, CYCLES],
        cwd=tmp_path,
        env=dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir), JITDUMPDIR=str(trace_dir)),
        capture_output=True,
        timeout=120,
    )
    return proc, sorted(trace_dir.glob("*.etwtrace"))


def max_rebuilt_depth(path):
    """The deepest stack of the script's own functions rebuilt from the trace, which must define
    every function it pushes (each enable's file reads on its own). Each thread's
    stack holds (function, how many of the script's functions are at or below it), so a push
    costs the same at any depth."""
    in_script, stacks, deepest = {}, {}, 0
    for e in etwtrace.read(path):
        if e.name == "PythonFunction":
            in_script[e["FunctionID"]] = e["SourceFile"] in (str(SCRIPT), "<string>")
        elif e.name == "PythonFunctionPush":
            stack = stacks.setdefault(e.thread_id, [])
            function = e["FunctionID"]
            assert function in in_script, f"{path}: function {function} is pushed but not defined in this file"
            depth = (stack[-1][1] if stack else 0) + in_script[function]
            stack.append((function, depth))
            deepest = max(deepest, depth)
        elif e.name == "PythonFunctionPop":
            stack = stacks.get(e.thread_id)
            assert stack and stack[-1][0] == e["FunctionID"], "pop must match the last push of its thread"
            stack.pop()
    return deepest


@pytest.mark.parametrize("mode", ["instrumented", "stack"])
def test_enable_cycling(tmp_path, mode):
    untraced, _ = run(tmp_path, "none")
    assert untraced.returncode == 0, untraced.stderr
    traced, files = run(tmp_path, mode)
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, untraced.stdout, untraced.stderr)
    if mode == "instrumented":
        real = int(untraced.stdout.split()[-1])
        assert len(files) == int(CYCLES)
        for path in files:
            info = TraceFile(path).info
            assert info["complete"] and info["lost_events"] == 0 and info["unmatched_pops"] == 0, info
            assert max_rebuilt_depth(path) <= real, path
