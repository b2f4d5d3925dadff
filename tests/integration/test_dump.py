"""python -m etwtrace dump on good and bad input: one sentence and a non-zero exit for every
mistake, never a traceback or an empty listing with exit status 0."""

import json
import os
import re
import subprocess
import sys

import pytest

PROGRAM = "import json, etwtrace\n\ndef work():\n    etwtrace.mark('m')\n    return json.dumps([1])\n\nwork()\n"


def dump(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "etwtrace", "dump", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    root = tmp_path_factory.mktemp("dump")
    (root / "prog.py").write_text(PROGRAM)
    proc = subprocess.run([sys.executable, "-m", "etwtrace", "--instrument", "--quiet", "--", "prog.py"], cwd=root,
                          env=dict(os.environ, ETWTRACE_TRACE_DIR=str(root)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    (path,) = root.glob("*.etwtrace")
    return path


def one_sentence_error(proc, *words):
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("etwtrace: ")
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_times_are_relative_and_python_frames_carry_their_file(trace):
    proc = dump(trace)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("0.000000000 ")
    mark = next(line for line in lines if line.split()[1] == "PythonMark")
    assert re.search(r"stack=py:work\(/.*prog\.py:3\) <- py:<module>\(/.*prog\.py:1\)", mark), mark
    absolute = dump(trace, "--absolute").stdout.splitlines()
    assert float(absolute[0].split()[0]) > 0 and len(absolute) == len(lines)


def test_event_filter(trace):
    proc = dump(trace, "--event", "PythonMark")
    assert proc.returncode == 0
    assert [line.split()[1] for line in proc.stdout.splitlines()] == ["PythonMark"]
    one_sentence_error(dump(trace, "--event", "NoSuchEvent"), "no event is named 'NoSuchEvent'", "PythonMark")


def test_missing_path_and_text_file(tmp_path):
    one_sentence_error(dump(tmp_path / "missing"), "does not exist")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    one_sentence_error(dump(text), "not an etwtrace trace file")
    assert "etwtrace: etwtrace" not in dump(text).stderr


def test_directory_that_is_not_a_capture(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    one_sentence_error(dump(tmp_path), "neither an etwtrace capture")


@pytest.mark.parametrize("content, words", [("{not json", ["damaged", "manifest.json"]),
                                            ('{"format": "etwtrace-capture", "complete": true', ["damaged"])])
def test_corrupt_manifest(tmp_path, content, words):
    (tmp_path / "manifest.json").write_text(content)
    one_sentence_error(dump(tmp_path), *words)


def test_file_inside_a_capture_names_the_capture(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "etwtrace-capture", "complete": True}))
    (tmp_path / "perf.data").write_bytes(b"PERFILE2")
    one_sentence_error(dump(tmp_path / "perf.data"), f"python -m etwtrace dump {tmp_path}")


def test_header_then_garbage(trace, tmp_path):
    damaged = tmp_path / "damaged.etwtrace"
    damaged.write_bytes(trace.read_bytes()[:120] + bytes(range(256)) * 16)
    proc = dump(damaged)
    # Whatever decodes before the garbage may be listed; the damage is said, and the exit fails.
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("etwtrace: ")


def test_cut_short_trace_says_what_is_missing(trace, tmp_path):
    cut = tmp_path / "cut.etwtrace"
    cut.write_bytes(trace.read_bytes()[:-3])
    proc = dump(cut)
    assert proc.stdout and "was cut short" in proc.stderr and "events were read" in proc.stderr
