"""etwtrace's own code (launcher, capture set-up, reader) never appears in what it records."""

import os
import subprocess
import sys
from pathlib import Path

import etwtrace
from etwtrace._read.jitdump import read_jitdump

PACKAGE = str(Path(etwtrace.__file__).resolve().parent) + os.sep
PROGRAM = "import json\n\ndef work():\n    return json.dumps({'a': [1, 2, 3]})\n\nfor _ in range(3):\n    work()\n"


def _launch(tmp_path, mode):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    env = dict(os.environ, JITDUMPDIR=str(tmp_path), ETWTRACE_TRACE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "etwtrace", mode, "--", str(script)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return script


def test_stack_mode_publishes_no_etwtrace_function(tmp_path):
    script = _launch(tmp_path, "--stack")
    (dump,) = tmp_path.glob("jit-*.dump")
    files = {e["SourceFile"] for e in read_jitdump(str(dump))}
    assert str(script) in files  # the program's own functions are there
    assert any(f.endswith("json/encoder.py") for f in files)
    assert [f for f in files if f.startswith(PACKAGE)] == []
    os.unlink(f"/tmp/perf-{dump.name[4:-5]}.map")


def test_instrumented_mode_records_no_etwtrace_frame(tmp_path):
    script = _launch(tmp_path, "--instrument")
    (trace,) = tmp_path.glob("*.etwtrace")
    events = list(etwtrace.read(str(trace)))
    files = {e["SourceFile"] for e in events if e.name == "PythonFunction"}
    assert str(script) in files
    assert [f for f in files if f.startswith(PACKAGE)] == []
    frames = {frame.source_file for e in events if e.name == "PythonStackSample" or e.name.endswith("Push")
              for frame in e.stack}
    assert [f for f in frames if f and f.startswith(PACKAGE)] == []
