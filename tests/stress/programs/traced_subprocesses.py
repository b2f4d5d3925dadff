"""Subprocesses: a plain child, and children started under `python -m etwtrace` in both modes
from inside this (possibly traced) program; their output and exit codes are printed."""
import os
import subprocess
import sys
import tempfile

CHILD = "import sys\ndef f(n): return n if n < 2 else f(n-1) + f(n-2)\nprint('child', f(18))\nsys.exit(3)\n"


def run(args):
    proc = subprocess.run([sys.executable, *args, "-c", CHILD], capture_output=True, text=True)
    print(args, proc.returncode, proc.stdout.strip(), proc.stderr.strip())


# The children's trace files and jitdumps go to a directory of this program's own.
with tempfile.TemporaryDirectory() as tmp:
    os.environ["ETWTRACE_TRACE_DIR"] = os.environ["JITDUMPDIR"] = tmp
    run([])
    run(["-m", "etwtrace", "--stack", "--quiet", "--"])
    run(["-m", "etwtrace", "--instrument", "--quiet", "--"])
    print("trace files", sorted(n.split("-")[0] for n in os.listdir(tmp) if n.endswith(".etwtrace")))
    for name in os.listdir(tmp):
        if name.startswith("jit-"):
            try:
                os.unlink(f"/tmp/perf-{name[4:-5]}.map")
            except OSError:
                pass
