"""Running the workload script once under one tool, measured from inside (the work's own time)
and from outside (wall time, post-processing after the work ends, peak RSS, output size,
samples that arrived)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import envs

SCRIPT = str(Path(__file__).resolve().parents[1] / "workload.py")
TIMEOUT = 600


class RunFailed(Exception):
    pass


def symbol_files(pid):
    """The per-process files that perf JIT support writes to /tmp by name (ours, -X perf)."""
    return [f"/tmp/perf-{pid}.map", f"/tmp/jit-{pid}.dump"]


def tree_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def run_once(env, tool, workload, scale, extra=(), keep=None):
    """One run; a dict of figures. `keep(out)` is called on the output directory before it is
    removed (the capture-cost measurements read it)."""
    work = Path(tempfile.mkdtemp(prefix="run-", dir=envs.BENCH / "tmp"))
    out = work / "out"
    out.mkdir()
    result = work / "result.json"
    script = [SCRIPT, workload, str(scale), str(result), *tool.script_args, *extra]
    argv = tool.command(env, str(out), script)
    child_env = dict(os.environ, JITDUMPDIR=str(out), ETWTRACE_TRACE_DIR=str(out))
    child_env.pop("PYTHONPATH", None)
    try:
        with open(work / "stdout", "wb") as stdout, open(work / "stderr", "wb") as stderr:
            started = time.monotonic()
            proc = subprocess.Popen(argv, cwd=out, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                    env=child_env, start_new_session=True)
            killer = threading.Timer(TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
            killer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
            exited = time.monotonic()
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not result.exists():
            err = (work / "stderr").read_text(errors="replace").strip().splitlines()
            raise RunFailed(f"exit status {proc.returncode}: {err[-1] if err else 'no output'}"[:300])
        inner = json.loads(result.read_text())
        extra_bytes = 0
        for path in symbol_files(inner["pid"]):
            if os.path.exists(path):
                extra_bytes += os.lstat(path).st_size
                os.unlink(path)
        figures = {
            "elapsed": inner["elapsed"],
            "wall": exited - started,
            "post": exited - inner["end"],
            "rss_mb": max(usage.ru_maxrss, inner["maxrss_kb"]) / 1024,
            "output_bytes": tree_size(out) + extra_bytes,
            "cpu": inner.get("cpu"),
            "work_cpu": inner.get("work_cpu"),
            "program_cpu": inner.get("program_cpu"),
        }
        if tool.samples:
            try:
                figures["samples"] = tool.samples(str(out), env, inner)
            except (OSError, ValueError, subprocess.CalledProcessError) as e:
                figures["samples_error"] = str(e)
        if keep:
            keep(out, inner)
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)
