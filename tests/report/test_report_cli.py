"""`report` on the command line: formats, output files, and one sentence for every bad input."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.perf

PROGRAM = Path(__file__).resolve().parents[1] / "scripts" / "report" / "known_shape.py"


def run_report(*args, cwd=None):
    """The one place that starts the report command (until the launcher has `report`)."""
    command = [sys.executable, "-c", "import sys, etwtrace._report as r; sys.exit(r.main(sys.argv[1:]))",
               *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def assert_one_sentence_failure(proc, *words):
    assert proc.returncode in (1, 2), proc
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.etwtrace"
    proc = subprocess.run([sys.executable, "-m", "etwtrace", "--capture", str(path), "--", str(PROGRAM), "0.3"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return path


def test_summary_on_stdout(capture):
    proc = run_report(capture)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"etwtrace report: {capture}")
    assert "hot (known_shape.py:" in proc.stdout and "\nhealth: " in proc.stdout
    assert "\033[" not in proc.stdout


def test_collapsed_to_a_file_parses_back_and_says_how_to_open_it(capture, tmp_path):
    out = tmp_path / "stacks.folded"
    proc = run_report(capture, "--format", "collapsed", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stderr and "flamegraph.pl" in proc.stderr
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        assert stack and int(count) > 0
        total += int(count)
    assert any(";hot (" in line for line in out.read_text().splitlines())
    assert total > 100


def test_the_default_output_file_sits_next_to_the_capture_and_is_only_replaced_if_ours(capture):
    default = Path(str(capture) + "-report.folded")
    try:
        first = run_report(capture, "--format", "collapsed", "--metric", "offcpu")
        assert first.returncode == 0, first.stderr
        assert default.exists() and str(default) in first.stderr
        again = run_report(capture, "--format", "collapsed")
        assert again.returncode == 0, again.stderr
        default.write_text("my own notes\n")
        refused = run_report(capture, "--format", "collapsed")
        assert_one_sentence_failure(refused, "is not an etwtrace report", "-o")
        assert default.read_text() == "my own notes\n"
    finally:
        default.unlink(missing_ok=True)


def test_user_stacktags_replace_the_shipped_ones(capture, tmp_path):
    rules = tmp_path / "mine.stacktags"
    rules.write_text("[Everything] | * | *\n")
    proc = run_report(capture, "--format", "collapsed", "-o", "-", "--stacktags", rules)
    assert proc.returncode == 0, proc.stderr
    assert "[Python runtime]" not in proc.stdout and "[Everything]" in proc.stdout
    rules.write_text("[Broken] | *\n")
    assert_one_sentence_failure(run_report(capture, "--stacktags", rules), f"{rules}:1:")


def test_a_damaged_capture_is_one_sentence(capture, tmp_path):
    broken = tmp_path / "broken.etwtrace"
    shutil.copytree(capture, broken, symlinks=True)
    (data,) = [p for p in (broken / "events.jsonl.gz", broken / "perf.data") if p.exists()]
    data.write_bytes(b"not what perf or etwtrace wrote\n" * 100)
    assert_one_sentence_failure(run_report(broken), str(broken))


@pytest.mark.parametrize("case", ["missing", "not-a-capture", "bad-manifest", "garbage-trace", "format",
                                  "metric", "output-dir", "option"])
def test_bad_inputs_are_one_sentence(tmp_path, case):
    path = tmp_path / "in"
    args = []
    if case == "not-a-capture":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif case == "bad-manifest":
        path.mkdir()
        (path / "manifest.json").write_text("{not json")
    elif case == "garbage-trace":
        path = tmp_path / "x.etwtrace"
        path.write_bytes(b"\0garbage" * 100)
    elif case in ("format", "metric", "output-dir", "option"):
        path = tmp_path / "t.etwtrace"
        path.write_bytes(b"")
        args = {"format": ["--format", "nope"], "metric": ["--metric", "nope"],
                "output-dir": ["--format", "collapsed", "-o", tmp_path / "no" / "such" / "f"],
                "option": ["--frobnicate"]}[case]
    proc = run_report(path, *args)
    assert_one_sentence_failure(proc)
