"""Memory per function under tracing, measured inside the program (code_churn.py) over 30,000
functions made with exec() after a warm-up, against the same program untraced:
  * dead: each function dropped, the same source each time. A dead function's record goes
    back to the pool and the next copy takes it (and its thunk) back: no growth per function
    (it was 270-350 bytes per function before);
  * live: each function kept, each with its own name: at most 200 bytes each over untraced
    (RSS; stack mode's thunks are one physical copy mapped many times, so PSS is less).
Output is compared byte for byte too."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "code_churn.py"
MODES = {"stack": ["--stack"], "instrumented": ["--instrument"]}
COUNT = 30_000
# Bytes per function over untraced, RSS. Dead: noise only (page granularity, allocator slack).
LIMITS = {"dead": 16, "live": 200}


def run(tmp_path, name, kind, launcher):
    report = tmp_path / f"{name}.memory"
    proc = subprocess.run(
        [sys.executable, *launcher, str(SCRIPT), kind, str(COUNT)],
        cwd=tmp_path,
        env=dict(os.environ, MEMORY_REPORT=str(report), ETWTRACE_TRACE_DIR=str(tmp_path)),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rss_kb, pss_kb = map(int, report.read_text().split())
    return proc, rss_kb, pss_kb


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_memory_per_function(tmp_path, kind, mode):
    untraced, base_rss, _ = run(tmp_path, "untraced", kind, [])
    traced, rss, pss = run(tmp_path, "traced", kind, ["-m", "etwtrace", *MODES[mode], "--quiet", "--"])
    assert (traced.stdout, traced.stderr) == (untraced.stdout, untraced.stderr)
    per_function = (rss - base_rss) * 1024 / COUNT
    print(f"{kind} {mode}: {per_function:.0f} bytes per function over untraced (RSS; traced PSS growth {pss} kB)")
    assert per_function <= LIMITS[kind], f"{per_function:.0f} bytes per function over untraced"
