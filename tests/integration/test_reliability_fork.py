"""os.fork() in an instrumented program: stdout, stderr and exit status are the untraced
run's, also with -W error::DeprecationWarning (3.12+ warn about forking a process with more
than one thread, and our trace writer thread must not be one), and the parent's and every
child's trace are complete with no event lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etwtrace._read import TraceFile

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "fork_three.py"


def run(tmp_path, traced, warn_args):
    trace_dir = tmp_path / ("traces" if traced else "untraced")
    trace_dir.mkdir()
    launcher = ["-m", "etwtrace", "--instrument", "--quiet", "--"] if traced else []
    proc = subprocess.run(
        [sys.executable, *warn_args, *launcher, str(SCRIPT)],
        cwd=tmp_path,
        env=dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir)),
        capture_output=True,
        timeout=60,
    )
    return proc, sorted(trace_dir.glob("*.etwtrace"))


@pytest.mark.parametrize("warn_args", [[], ["-W", "error::DeprecationWarning"]], ids=["default", "werror"])
def test_fork_output_unchanged(tmp_path, warn_args):
    untraced, _ = run(tmp_path, False, warn_args)
    traced, files = run(tmp_path, True, warn_args)
    assert (traced.returncode, traced.stdout, traced.stderr) == (untraced.returncode, untraced.stdout, untraced.stderr)
    assert untraced.returncode == 0
    assert len(files) == 4, files
    parents = set()
    for path in files:
        info = TraceFile(path).info
        assert info["complete"] and info["lost_events"] == 0 and info["error"] == "", info
        parents.add(info["parent_pid"])
    assert len(parents) == 2  # the parent's (0) and the children's (the parent's pid)
