"""The tracer's own threads (the trace writer, the sampler's drain) block every signal, so a
signal sent to the process (SIGALRM, SIGINT, SIGCHLD...) lands on the program's threads as it
does untraced. Were one of ours to take it, CPython's handler would only set a flag there, and a
main thread blocked in read() or sleep() would wait on, never running the program's handler."""

import os
import signal
import subprocess
import sys

import pytest

PROGRAM = """\
import os, threading, time

t = time.process_time()
while time.process_time() - t < 0.15:  # the tracer's threads are running by now
    pass
me = threading.get_native_id()
for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
    with open(f"/proc/self/task/{tid}/status") as f:
        blocked = next(int(line.split()[1], 16) for line in f if line.startswith("SigBlk:"))
    print("program" if tid == me else "other", blocked)
"""

MODES = {"instrumented": ["--instrument"], "sampler": ["--sampler"]}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_tracers_threads_take_no_signal_of_the_program(tmp_path, mode):
    script = tmp_path / "app.py"
    script.write_text(PROGRAM)
    proc = subprocess.run([sys.executable, "-m", "etwtrace", *MODES[mode], "--quiet", "--", str(script)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, ETWTRACE_TRACE_DIR=str(tmp_path)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    threads = [line.split() for line in proc.stdout.splitlines()]
    program = [int(mask) for kind, mask in threads if kind == "program"]
    ours = [int(mask) for kind, mask in threads if kind == "other"]
    assert program == [0], proc.stdout
    assert ours, f"no thread of the tracer found: {proc.stdout}"
    for signum in (signal.SIGALRM, signal.SIGINT, signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1):
        bit = 1 << (signum - 1)
        assert all(mask & bit for mask in ours), (signum, proc.stdout)
