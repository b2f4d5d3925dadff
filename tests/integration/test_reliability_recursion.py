"""Recursion depth under the launcher: a program recursing until RecursionError, at the default
limit and with the limit raised (120,000 levels on 3.11+), and C recursion started deep in
Python recursion, prints the same depths and messages traced (stack mode, instrumented) as
untraced, byte for byte, and exits 0: no level spent by the launcher, none lost to CPython's C
recursion budget under the eval-frame hook (3.12/3.13), and no C stack overflow where the
hook runs Python calls on the C stack that untraced use none of (3.11+)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "recursion_depth.py"
MODES = {"stack": ["--stack"], "instrumented": ["--instrument"]}


def run(tmp_path, launcher):
    return subprocess.run([sys.executable, *launcher, str(SCRIPT)], cwd=tmp_path, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def untraced(tmp_path_factory):
    proc = run(tmp_path_factory.mktemp("untraced"), [])
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("mode", sorted(MODES))
def test_recursion_depth_unchanged(tmp_path, untraced, mode):
    traced = run(tmp_path, ["-m", "etwtrace", *MODES[mode], "--quiet", "--"])
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, untraced.stdout, untraced.stderr)
    lines = dict(line.split(" ", 1) for line in untraced.stdout.decode().splitlines())
    # The program really went deep: the raised limit was reached, not a crash or a short stop.
    depth = int(lines["raised"].strip("()").split(",")[0])
    assert depth >= (119_990 if sys.version_info >= (3, 11) else 14_990), lines["raised"]
