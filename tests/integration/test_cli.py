"""The launcher, ported from upstream's tests/test_cli.py to Linux option forms, plus the
guarantee that a traced program behaves exactly like an untraced one."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import etwtrace
import etwtrace._cli as CLI
import etwtrace._cli.pth as PTH


@pytest.mark.parametrize("help_opt", [["-?"], ["-h"], ["--help"], []])
def test_cli_help(capsys, help_opt):
    assert 0 == CLI.main(help_opt)
    out, err = capsys.readouterr()
    assert etwtrace.__version__ in out
    assert CLI.HELP_TEXT in out
    assert not err


def test_help_documents_every_option_with_an_example():
    for option in ("--stack", "--instrument", "--capture", "--enable", "--disable", "--info",
                   "--profile", "--stacktags", "--help", "--version"):
        assert option in CLI.HELP_TEXT
    assert CLI.HELP_TEXT.count("python -m etwtrace") >= 8


def test_cli_version(capsys):
    assert 0 == CLI.main(["--version"])
    assert capsys.readouterr().out.strip() == f"etwtrace {etwtrace.__version__}"


@pytest.mark.parametrize("trace_type, expected_attr", [
    ("--stack", "StackSamplingTracer"),
    ("--instrument", "InstrumentedTracer"),
    ("--instrumented", "InstrumentedTracer"),
])
def test_cli_trace_type(trace_type, expected_attr, monkeypatch):
    accessed = []

    class MockEtwtrace:
        def __getattr__(self, attr):
            accessed.append(attr)
            return lambda *a, **kw: None

    monkeypatch.setattr(CLI, "etwtrace", MockEtwtrace())
    assert 0 == CLI.main([trace_type])
    assert accessed == [expected_attr]


@pytest.mark.parametrize("trace_type, expected_mode", [
    ([], "stack"),
    (["--stack"], "stack"),
    (["--instrument"], "instrumented"),
])
def test_cli_trace_info(trace_type, expected_mode, capsys):
    assert 0 == CLI.main(["--info", *trace_type])
    out, err = capsys.readouterr()
    value = ast.literal_eval(out.strip())
    assert isinstance(value, tuple)
    assert value[0] == "_etwtrace"
    assert value[1] == expected_mode


@pytest.mark.parametrize("arg", ["--profile", "--stacktags"])
def test_cli_profile(arg, capsys):
    assert 0 == CLI.main([arg])
    out, err = capsys.readouterr()
    assert Path(out.strip()).is_file()


@pytest.mark.parametrize("args", [["--capture"], ["--capture", "--stack"], ["--capture="]])
def test_cli_capture_needs_a_path(args, capsys):
    assert 1 == CLI.main(args)
    err = capsys.readouterr().err
    assert "--capture needs" in err
    assert err.count("\n") == 1  # one sentence, no traceback


def _enable(monkeypatch, tmp_path, capsys, args):
    monkeypatch.setattr(PTH, "_site_packages", lambda: str(tmp_path))
    assert 0 == CLI.main(args)
    out, _ = capsys.readouterr()
    assert f"Created {tmp_path}" in out
    pth_file = tmp_path / "etwtrace.pth"
    assert pth_file.is_file()
    return pth_file.read_text(), out


def test_cli_enable_default(capsys, monkeypatch, tmp_path):
    pth, _ = _enable(monkeypatch, tmp_path, capsys, ["--enable"])
    assert "import etwtrace; etwtrace.enable_if('', 'ETWTRACE_TYPE')" in pth


def test_cli_enable_custom_var(capsys, monkeypatch, tmp_path):
    pth, out = _enable(monkeypatch, tmp_path, capsys, ["--enable", "TEST_ON"])
    assert "import etwtrace; etwtrace.enable_if('TEST_ON', 'TEST_ON_TYPE')" in pth
    assert "TEST_ON=1" in out


def test_cli_enable_two_custom_vars(capsys, monkeypatch, tmp_path):
    pth, _ = _enable(monkeypatch, tmp_path, capsys, ["--enable", "TEST_ON", "TEST_TYPE"])
    assert "import etwtrace; etwtrace.enable_if('TEST_ON', 'TEST_TYPE')" in pth


def test_cli_disable_removes_only_our_files(capsys, monkeypatch, tmp_path):
    ours = "import etwtrace; etwtrace.enable_if('', 'ETWTRACE_TYPE')\n"
    for d in ("1", "2", "3"):
        (tmp_path / d).mkdir()
    (tmp_path / "1" / "etwtrace.pth").write_text(ours)
    (tmp_path / "1" / "not-etwtrace.pth").write_text(ours)
    (tmp_path / "2" / "etwtrace.pth").write_text(ours)
    (tmp_path / "3" / "etwtrace.pth").write_text("import somebody_else\n")  # not ours
    monkeypatch.setattr(sys, "path", [str(tmp_path / d) for d in ("1", "2", "3")])
    monkeypatch.setattr(PTH, "_site_packages", lambda: str(tmp_path / "1"))
    assert 0 == CLI.main(["--disable"])
    out = capsys.readouterr().out
    assert f"Removed {tmp_path / '1' / 'etwtrace.pth'}" in out
    assert f"Removed {tmp_path / '2' / 'etwtrace.pth'}" in out
    files = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.pth")}
    assert files == {Path("1/not-etwtrace.pth"), Path("3/etwtrace.pth")}


def test_cli_disable_when_not_enabled(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(PTH, "_site_packages", lambda: str(tmp_path))
    assert 0 == CLI.main(["--disable"])
    assert "No etwtrace.pth was found" in capsys.readouterr().out


def test_cli_extra_args(capsys):
    assert 1 == CLI.main(["--EXTRA", "-?", "with a space"])
    out, err = capsys.readouterr()
    assert "etwtrace for Linux" in out  # help still printed
    assert 'unknown option --EXTRA and unexpected argument "with a space"' in err


def test_cli_unknown_option_before_target_is_not_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    assert 1 == CLI.main(["--bogus", "--", str(script)])
    assert "--bogus" in capsys.readouterr().err
    assert not marker.exists()


# --- running targets: subprocesses, compared with untraced runs --------------------------

def run(args, cwd, env=None, **kw):
    full_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120, **kw)


def launch(tmp_path, *args, mode="--stack"):
    return run([sys.executable, "-m", "etwtrace", mode, "--quiet", "--", *args], cwd=tmp_path)


PROGRAMS = {
    "argv_exit": """
        import sys
        print(sys.argv, __name__)
        raise SystemExit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
    """,
    "uncaught": """
        def inner():
            raise ValueError("boom")
        def outer():
            inner()
        print("before")
        outer()
    """,
    "exit_message": """
        import sys
        sys.exit("fatal: something went wrong")
    """,
    "syntax_error": """
        def f(:
            pass
    """,
    "chained": """
        try:
            {}["missing"]
        except KeyError as ex:
            raise RuntimeError("wrapped") from ex
    """,
    "sys_path": """
        import sys, os
        print(os.path.basename(sys.path[0]) == os.path.basename(os.path.dirname(os.path.abspath(__file__))))
        import helper_mod
        print(helper_mod.VALUE)
    """,
}


@pytest.fixture
def program(tmp_path):
    (tmp_path / "helper_mod.py").write_text("VALUE = 42\n")

    def make(name):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(PROGRAMS[name]))
        return path.name

    return make


@pytest.mark.parametrize("mode", ["--stack", "--instrument"])
@pytest.mark.parametrize("name, args", [
    ("argv_exit", ["a", "b"]),
    ("argv_exit", ["3"]),
    ("uncaught", []),
    ("exit_message", []),
    ("syntax_error", []),
    ("chained", []),
    ("sys_path", []),
])
def test_traced_run_matches_untraced(tmp_path, program, mode, name, args):
    script = program(name)
    plain = run([sys.executable, script, *args], cwd=tmp_path)
    traced = launch(tmp_path, script, *args, mode=mode)
    assert traced.returncode == plain.returncode
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr


def test_script_sees_argv_and_exit_code(tmp_path, program):
    script = program("argv_exit")
    proc = launch(tmp_path, script, "a", "b")
    assert proc.stdout.strip() == "['argv_exit.py', 'a', 'b'] __main__"
    assert proc.returncode == 0
    proc = launch(tmp_path, script, "7")
    assert proc.returncode == 7


def test_module_target(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\nprint(__name__, sys.argv[1:])\nsys.exit(5)\n")
    (pkg / "tool.py").write_text("import sys\nprint(__name__, sys.argv[0].endswith('tool.py'), sys.argv[1:])\n")
    proc = launch(tmp_path, "-m", "mypkg", "x", "--flag")
    assert proc.stdout.strip() == "__main__ ['x', '--flag']"
    assert proc.returncode == 5
    proc = launch(tmp_path, "-m", "mypkg.tool", "y")
    assert proc.stdout.strip() == "__main__ True ['y']"
    assert proc.returncode == 0


def test_missing_script(tmp_path):
    plain = run([sys.executable, "nope.py"], cwd=tmp_path)
    traced = launch(tmp_path, "nope.py")
    assert traced.returncode == plain.returncode == 2
    assert "can't open file" in traced.stderr and "nope.py" in traced.stderr


def test_nothing_after_double_dash(tmp_path):
    proc = run([sys.executable, "-m", "etwtrace", "--"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "nothing to run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_keyboard_interrupt_ends_like_python(tmp_path):
    script = tmp_path / "interrupt.py"
    script.write_text("import atexit\natexit.register(print, 'atexit ran')\nraise KeyboardInterrupt\n")
    plain = run([sys.executable, script.name], cwd=tmp_path)
    traced = launch(tmp_path, script.name)
    assert plain.returncode == traced.returncode == -2
    assert traced.stdout == plain.stdout == "atexit ran\n"
    assert traced.stderr == plain.stderr


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "etwtrace"
    assert exe.exists()
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"etwtrace {etwtrace.__version__}"


def test_enable_disable_round_trip_in_a_venv(tmp_path):
    """--enable writes etwtrace.pth into the venv's site-packages (not the base's); every new
    interpreter there then traces when the variable is set; --disable removes it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = str(venv / "bin" / "python")
    package_parent = str(Path(etwtrace.__file__).resolve().parent.parent)
    env = {"PYTHONPATH": package_parent}
    proc = run([vpy, "-m", "etwtrace", "--enable", "MY_TRACE"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    site = run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip()
    pth = Path(site) / "etwtrace.pth"
    assert f"Created {pth}" in proc.stdout
    assert pth.is_file()
    assert str(tmp_path) in str(pth)  # the venv's site-packages
    check = "import etwtrace; print(etwtrace.is_active(), type(etwtrace._tracer).__name__)"
    assert run([vpy, "-c", check], cwd=tmp_path).stdout.split() == ["False", "NoneType"]
    assert run([vpy, "-c", check], cwd=tmp_path, env={"MY_TRACE": "1"}).stdout.split() == ["True", "StackSamplingTracer"]
    out = run([vpy, "-c", check], cwd=tmp_path, env={"MY_TRACE": "1", "MY_TRACE_TYPE": "instrumented"}).stdout.split()
    assert out == ["True", "InstrumentedTracer"]
    # The launcher itself is never traced automatically.
    proc = run([vpy, "-m", "etwtrace", "--version"], cwd=tmp_path, env={"MY_TRACE": "1"})
    assert proc.stderr == "" and not proc.stdout.startswith("True")
    proc = run([vpy, "-m", "etwtrace", "--disable"], cwd=tmp_path)
    assert proc.returncode == 0
    assert f"Removed {pth}" in proc.stdout
    assert not pth.exists()
    assert run([vpy, "-c", "import etwtrace"], cwd=tmp_path).returncode != 0  # gone for good


@pytest.mark.parametrize("mode, written", [("--stack", r"/tmp/perf-\d+\.map and .*/jit-\d+\.dump"),
                                           ("--instrument", r"/.*/etwtrace-\d+\.etwtrace")])
def test_launcher_says_once_which_files_it_writes(tmp_path, mode, written):
    import re

    script = tmp_path / "s.py"
    script.write_text("print('out')\n")
    proc = run([sys.executable, "-m", "etwtrace", mode, "--", str(script)], cwd=tmp_path,
               env={"ETWTRACE_TRACE_DIR": str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout == "out\n"
    assert re.fullmatch(rf"etwtrace: \w+ mode writes {written}\n", proc.stderr), proc.stderr


def test_dash_c_runs_code_as_python_does(tmp_path):
    code = "import sys; print(sys.argv, __name__); raise SystemExit(3)"
    plain = run([sys.executable, "-c", code, "a"], cwd=tmp_path)
    traced = launch(tmp_path, "-c", code, "a")
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    failing = "raise ValueError('x')"
    plain, traced = run([sys.executable, "-c", failing], cwd=tmp_path), launch(tmp_path, "-c", failing)
    assert (traced.returncode, traced.stderr) == (plain.returncode, plain.stderr)


@pytest.mark.parametrize("variable, mode", [("ETWTRACE_TRACE_DIR", "--instrument"), ("JITDUMPDIR", "--stack")])
def test_missing_output_directory_is_one_sentence(tmp_path, variable, mode):
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    proc = run([sys.executable, "-m", "etwtrace", mode, "--", str(script)], cwd=tmp_path,
               env={variable: str(tmp_path / "missing")})
    assert proc.returncode == 1
    assert proc.stderr == (f"etwtrace: {variable} names {tmp_path / 'missing'}, which is not a directory; "
                           f"create it, or set {variable} to a writable directory\n")
    assert not marker.exists()


def test_directory_and_zip_applications_run_as_python_runs_them(tmp_path):
    import zipfile

    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text("import sys\nprint('app', sys.argv, sorted(globals()))\n")
    with zipfile.ZipFile(tmp_path / "app.pyz", "w") as z:
        z.write(app / "__main__.py", "__main__.py")
    for target in ("app", "app.pyz"):
        plain = run([sys.executable, target, "x"], cwd=tmp_path)
        traced = launch(tmp_path, target, "x")
        assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
        assert plain.stdout.startswith("app [")


def test_main_module_globals_are_those_of_python(tmp_path):
    script = tmp_path / "g.py"
    script.write_text("print(sorted(globals()))\n")
    assert launch(tmp_path, "g.py").stdout == run([sys.executable, "g.py"], cwd=tmp_path).stdout
    code = "print(sorted(globals()), __loader__.__name__)"
    assert launch(tmp_path, "-c", code).stdout == run([sys.executable, "-c", code], cwd=tmp_path).stdout


# What a launch may add to the program's sys.modules beyond `python script.py`'s: what
# `python -m` itself loads (runpy, importlib.util: typing too on 3.9), what the tracers use
# (threading, atexit, warnings, _lsprof to stand aside for cProfile, and the modules these
# import) and etwtrace's own modules. Any more is objects in the program's collector
# generations: importing the capture machinery, dataclasses and zipfile into every run made a
# garbage-collecting workload 4-7 % slower under every mode.
TRACERS_USE = "runpy, importlib.util, importlib.machinery, threading, atexit, warnings, gc, _lsprof"


@pytest.mark.parametrize("mode", ["--stack", "--instrument", "--sampler"])
def test_a_launch_imports_only_what_the_mode_needs(tmp_path, mode):
    script = tmp_path / "modules.py"
    script.write_text("import sys\nprint(*sorted(sys.modules))\n")
    plain = set(run([sys.executable, "modules.py"], cwd=tmp_path).stdout.split())
    allowed = set(run([sys.executable, "-c", f"import sys, {TRACERS_USE}; print(*sys.modules)"],
                      cwd=tmp_path).stdout.split())
    traced = launch(tmp_path, "modules.py", mode=mode)
    assert traced.returncode == 0, traced.stderr
    added = set(traced.stdout.split()) - plain
    assert "etwtrace._etwtrace" in added
    unexpected = sorted(m for m in added - allowed if m != "etwtrace" and not m.startswith("etwtrace."))
    assert not unexpected, f"the launcher imported {unexpected} into the program"
    assert not {"etwtrace._capture.supervisor", "etwtrace._bundle", "etwtrace._read"} & added


def test_two_modes_at_once_is_a_mistake(capsys):
    assert 1 == CLI.main(["--stack", "--instrument", "--", "x.py"])
    assert capsys.readouterr().err == ("etwtrace: --stack and --instrument cannot be used together; choose one mode "
                                       "(only --instrument and --sampler go together)\n")


def test_instrument_and_sampler_go_together():
    from etwtrace._cli.options import parse

    for args in (["--instrument", "--sampler"], ["--sampler", "--instrument"]):
        command = parse([*args, "--sample-rate", "500", "--", "a.py"])
        assert command.mode == "instrumented" and command.tracer_options == {"samples": True, "sample_rate": 500}
    assert parse(["--sampler", "--wall-clock", "--", "a.py"]).tracer_options == {"clock": "wall"}


def test_keep_perf_data_reaches_the_capture_and_needs_one():
    from etwtrace._cli.options import parse

    assert parse(["--capture", "c", "--keep-perf-data", "--", "a.py"]).capture_options == {"keep_perf_data": True}
    assert parse(["--capture", "c", "--", "a.py"]).capture_options == {}
    with pytest.raises(CLI.UsageError, match="--keep-perf-data only applies to a capture"):
        parse(["--keep-perf-data", "--", "a.py"])
