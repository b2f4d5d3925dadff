"""A full disk: an instrumented program whose trace directory is a 1 MiB tmpfs (mounted here;
the suite runs as root) runs exactly as untraced; its trace file is whole (an END record, never
half a record) and counts the events it could not hold, and read() says how many were lost."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import etwtrace
from etwtrace._read import TraceFile

LOAD = Path(__file__).resolve().parent / "load" / "lossless_load.py"
CALLS = 100_000  # 4 threads: ~800,000 events, ~4 MB of trace for a 1 MiB disk


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}; needs root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI runs as root and must be able to")
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk_is_counted_in_the_file_and_reported(small_disk, tmp_path):
    args = [str(LOAD), str(CALLS)]
    untraced = subprocess.run([sys.executable, *args], capture_output=True, cwd=tmp_path)
    env = dict(os.environ, ETWTRACE_TRACE_DIR=str(small_disk))
    traced = subprocess.run([sys.executable, "-m", "etwtrace", "--instrument", "--quiet", "--", *args],
                            capture_output=True, env=env, cwd=tmp_path)
    assert untraced.returncode == 0
    assert (traced.returncode, len(traced.stdout.splitlines()), traced.stderr) == (0, 5, untraced.stderr)
    files = list(small_disk.glob("*.etwtrace"))
    assert len(files) == 1
    info = TraceFile(files[0]).info
    assert info["complete"] and not info["truncated"] and not info["error"], info
    assert info["lost_events"] > 0, info
    # Written plus lost: at least the push and pop of each of the 4 x CALLS calls.
    assert info["events"] + info["lost_events"] >= 8 * CALLS, info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = sum(1 for _ in etwtrace.read(files[0]))
    assert read == info["events"]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert messages == [f"{files[0]}: {info['lost_events']} events were lost while tracing"], messages
