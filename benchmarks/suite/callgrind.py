"""Instructions per Python call, by callgrind (repeatable on a loaded machine): fib(SMALL) and
fib(LARGE) under each in-process tool; the difference in instructions over the difference in
calls cancels start-up, import and the tool's fixed costs, and keeps its per-call work
(including writing its output)."""

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from workloads import fib as fib_workload

from . import envs, measure

SIZES = (16, 20)


def count(env, tool, n):
    with tempfile.TemporaryDirectory(prefix="callgrind-", dir=envs.BENCH / "tmp") as work:
        out = Path(work) / "out"
        out.mkdir()
        result = Path(work) / "result.json"
        script = [measure.SCRIPT, "fib", "1", str(result), *tool.script_args, "--fib", str(n)]
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                *tool.command(env, str(out), script)]
        # A fixed hash seed: string hashing decides dict probing, so a random one moves the
        # counts from run to run.
        child_env = dict(os.environ, JITDUMPDIR=str(out), ETWTRACE_TRACE_DIR=str(out), PYTHONHASHSEED="0")
        proc = subprocess.run(argv, cwd=out, capture_output=True, text=True, env=child_env, timeout=900,
                              stdin=subprocess.DEVNULL)
        if result.exists():
            for path in measure.symbol_files(json.loads(result.read_text())["pid"]):
                if os.path.exists(path):
                    os.unlink(path)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not m:
            tail = [line for line in proc.stderr.splitlines() if not line.startswith("==")]
            raise measure.RunFailed(f"valgrind: exit status {proc.returncode}: {tail[-1] if tail else ''}"[:300])
        return int(m.group(1))


def per_call(env, tool, sizes=SIZES):
    small, large = sizes
    calls = fib_workload.calls(large) - fib_workload.calls(small)
    return (count(env, tool, large) - count(env, tool, small)) / calls
