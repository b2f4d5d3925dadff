"""etwtrace.pth (--enable) and the launcher: the launcher is never traced from start-up, its
program is traced exactly once in the mode asked for, and a problem at start-up never stops a
program (one warning line, untraced)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import etwtrace

PACKAGE_PARENT = str(Path(etwtrace.__file__).resolve().parent.parent)
REPORT = ("import etwtrace, sys; print('active', etwtrace.is_active(), type(etwtrace._tracer).__name__, "
          "sys.argv[1:])")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv whose site-packages has an unconditional etwtrace.pth, and an `etwtrace` script."""
    root = tmp_path_factory.mktemp("pth")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = _run([python, "-m", "etwtrace", "--enable"], root)
    assert proc.returncode == 0, proc.stderr
    script = venv / "bin" / "etwtrace"
    script.write_text(f"#!{python}\nimport sys\nfrom etwtrace._cli import console_main\nsys.exit(console_main())\n")
    script.chmod(0o755)
    (root / "app.py").write_text(REPORT + "\n")
    return root, python


def _run(cmd, cwd, **env):
    full_env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT, JITDUMPDIR=str(cwd), ETWTRACE_TRACE_DIR=str(cwd))
    full_env.update(env)
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120)


@pytest.mark.parametrize("launcher, mode, expected", [
    (["etwtrace"], [], "StackSamplingTracer"),
    (["etwtrace"], ["--instrument"], "InstrumentedTracer"),
    (["python", "-m", "etwtrace"], ["--instrument"], "InstrumentedTracer"),
    (["python", "-u", "-m", "etwtrace"], [], "StackSamplingTracer"),
    (["python", "-X", "dev", "-metwtrace"], ["--instrument"], "InstrumentedTracer"),
    (["python", "-c", "import runpy, sys; sys.argv[0] = 'etwtrace'; runpy.run_module('etwtrace', run_name='__main__')"],
     ["--instrument"], "InstrumentedTracer"),
])
def test_launcher_traces_its_program_once_in_the_mode_asked_for(venv, launcher, mode, expected):
    root, python = venv
    first = {"python": python, "etwtrace": python.parent / "etwtrace"}[launcher[0]]
    exe = [first, *launcher[1:]]
    proc = _run([*exe, *mode, "--quiet", "--", "app.py", "x"], root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["active", "True", expected, "['x']"]
    assert proc.stderr == ""  # no "Skipping automatic tracing", no second tracer's error


def test_launcher_info_is_not_traced(venv):
    root, python = venv
    proc = _run([python.parent / "etwtrace", "--info"], root)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "'stack'" in proc.stdout
    proc = _run([python, "-c", "import etwtrace._cli as c, etwtrace; c.main(['--version']); print(etwtrace.is_active())"], root)
    assert proc.stdout.split()[-1] == "True"  # an ordinary program is traced by the .pth


def test_bogus_type_warns_once_and_runs_untraced(venv):
    root, python = venv
    proc = _run([python, "app.py"], root, ETWTRACE_TYPE="bogus")
    assert proc.returncode == 0
    assert proc.stdout.split()[:2] == ["active", "False"]
    assert proc.stderr.count("\n") == 1 and "ETWTRACE_TYPE='bogus' is not a tracing mode" in proc.stderr


def test_unwritable_output_warns_once_and_runs_untraced(venv):
    root, python = venv
    proc = _run([python, "app.py"], root, ETWTRACE_TYPE="instrumented", ETWTRACE_TRACE_DIR=str(root / "missing"))
    assert proc.returncode == 0
    assert proc.stdout.split()[:2] == ["active", "False"]
    assert proc.stderr.count("\n") == 1 and "ETWTRACE_TRACE_DIR names" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_enable_again_says_what_it_replaced(venv, tmp_path):
    root, python = venv
    proc = _run([python, "-m", "etwtrace", "--enable", "MY_TRACE"], root)
    assert proc.returncode == 0
    assert "Replaced" in proc.stdout and "(it traced every interpreter" in proc.stdout
    proc = _run([python, "-m", "etwtrace", "--enable"], root)
    assert "(it traced when MY_TRACE was set, in the mode MY_TRACE_TYPE named)" in proc.stdout


def test_enable_with_extra_arguments_writes_nothing(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = _run([venv / "bin" / "python", "-m", "etwtrace", "--enable", "A", "B", "C"], tmp_path)
    assert proc.returncode == 1
    assert "unexpected argument C" in proc.stderr and proc.stderr.count("\n") == 1
    assert not list(venv.rglob("etwtrace.pth"))
