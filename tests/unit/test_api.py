"""The Python API, as upstream defines it (see ../shared/docs/upstream.md)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import etwtrace


def test_version_matches_project():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml")
    assert re.fullmatch(r"\d+\.\d+\.\d+", etwtrace.__version__)
    if pyproject.exists():  # a source checkout
        source = (pyproject.parent / "src" / "etwtrace" / "_version.py").read_text()
        assert etwtrace.__version__ in source


@pytest.mark.parametrize("call", [
    lambda: etwtrace.mark("text"),
    lambda: etwtrace._mark_stack("text"),
])
def test_marks_without_tracer_warn_and_do_nothing(call):
    assert not etwtrace.is_active()
    with pytest.warns(RuntimeWarning, match="not enabled"):
        assert call() is None
    assert not etwtrace.is_active()


def test_mark_range_without_tracer_is_a_null_context():
    with pytest.warns(RuntimeWarning, match="not enabled"):
        with etwtrace.mark_range("span") as r:
            pass
    assert r is not None
    assert not etwtrace.is_active()


@pytest.mark.parametrize("cls, mode", [
    (etwtrace.StackSamplingTracer, "stack"),
    (etwtrace.InstrumentedTracer, "instrumented"),
])
def test_technical_info_names_native_module(cls, mode):
    info = cls()._get_technical_info()
    assert isinstance(info, tuple)
    assert info[0] == "_etwtrace"
    assert info[1] == mode
    assert info[2] == etwtrace.__version__
    # The repr must round-trip, since --info prints it for bug reports.
    assert ast.literal_eval(repr(info)) == info


def test_ignore_and_include_accumulate():
    tracer = etwtrace.StackSamplingTracer()
    tracer.ignore("/a.py", Path("/b.py"))
    tracer.include("/src/", "/lib/")
    assert {"/a.py", "/b.py"} <= tracer._ignored_files
    assert tracer._include_prefixes == ["/src/", "/lib/"]


def test_shipped_data_files_exist():
    profile = Path(etwtrace.get_profile_path())
    stacktags = Path(etwtrace.get_stacktags_path())
    assert profile.is_file() and profile.name == etwtrace.PROFILE_FILE
    assert stacktags.is_file() and stacktags.name == etwtrace.STACKTAGS_FILE
    import configparser

    parser = configparser.ConfigParser()
    parser.read(profile)
    assert {"Default", "Minimal"} <= set(parser.sections())
    rules = [line for line in stacktags.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(line.count("|") == 2 for line in rules)
    assert any("Import Machinery" in line for line in rules)


def test_content_path_copies_when_not_direct():
    path1 = Path(etwtrace._get_content_path(etwtrace.PROFILE_FILE, allow_direct=False))
    path2 = Path(etwtrace._get_content_path(etwtrace.STACKTAGS_FILE, allow_direct=False))
    assert path1.parent == path2.parent
    assert path1.read_bytes() == Path(etwtrace.get_profile_path()).read_bytes()
    assert path1.parent != Path(etwtrace.__file__).parent / "profiles"
    assert (path1.parent.stat().st_mode & 0o077) == 0  # private directory


def _enable_if(tmp_path, env):
    import os
    import subprocess
    import sys

    code = (
        "import etwtrace; etwtrace.enable_if('ETWTRACE_TEST_ON', 'ETWTRACE_TEST_TYPE'); "
        "print(type(etwtrace._tracer).__name__ if etwtrace.is_active() else None)"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ETWTRACE_TEST_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("value", ["0", "no", "false", "FALSE", "n", ""])
def test_enable_if_does_nothing_when_variable_is_false(tmp_path, value):
    proc = _enable_if(tmp_path, {"ETWTRACE_TEST_ON": value})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"


def test_enable_if_does_nothing_when_variable_is_unset(tmp_path):
    proc = _enable_if(tmp_path, {})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"


@pytest.mark.parametrize("value, mode, expected", [
    ("1", None, "StackSamplingTracer"),
    ("yes", "stack", "StackSamplingTracer"),
    ("true", "instrument", "InstrumentedTracer"),
    ("1", "Instrumented", "InstrumentedTracer"),
])
def test_enable_if_enables_the_chosen_mode(tmp_path, value, mode, expected):
    env = {"ETWTRACE_TEST_ON": value}
    if mode:
        env["ETWTRACE_TEST_TYPE"] = mode
    proc = _enable_if(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_enable_if_warns_about_an_unknown_type_and_runs_untraced(tmp_path):
    proc = _enable_if(tmp_path, {"ETWTRACE_TEST_ON": "1", "ETWTRACE_TEST_TYPE": "bogus"})
    assert proc.returncode == 0
    assert proc.stdout.strip() == "None"
    assert proc.stderr == ("etwtrace: warning: ETWTRACE_TEST_TYPE='bogus' is not a tracing mode "
                           "(use stack, instrumented or sampler); running untraced\n")


def test_thunk_memory_does_not_grow_with_functions(tmp_path):
    """Stack mode: 5000 traced functions' thunks use one shared 64 KiB chunk of physical memory
    (each function costs only its slot of address space): every chunk maps the same memfd."""
    program = r'''
import etwtrace
tracer = etwtrace.StackSamplingTracer()
tracer.enable()
for i in range(5000):
    namespace = {}
    exec(f"def f{i}(): return {i}", namespace)
    namespace[f"f{i}"]()
info = dict(item for item in tracer._get_technical_info() if isinstance(item, tuple))
inodes = []
with open("/proc/self/maps") as maps:
    for line in maps:
        if "memfd:etwtrace-thunks" in line:
            inodes.append((line.split()[1], line.split()[4]))
tracer.disable()
print(info["thunks"], info["thunk_bytes"], info["thunk_address_space"], info["thunk_memory"])
print(len(inodes), len(set(inodes)), inodes[0][0])
'''
    env = dict(os.environ, JITDUMPDIR=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    sizes, maps = run.stdout.splitlines()
    thunks, stride, address_space, memory = map(int, sizes.split())
    assert thunks >= 5000
    assert address_space >= thunks * stride
    assert memory == 64 * 1024, "one chunk of thunks, shared by every mapping"
    assert memory / thunks < 16, "physical bytes of thunk per traced function"
    mappings, distinct, perms = maps.split()
    assert int(mappings) == address_space // (64 * 1024) >= 7
    assert int(distinct) == 1, "every chunk maps the same memfd (one inode)"
    assert perms == "r-xs"
