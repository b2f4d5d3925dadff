"""--capture never silent about lost or partial data, affordable, relocatable (real perf).

Lost chunks (a 2-page ring buffer), a launcher killed with SIGKILL mid-run, an events file cut
short; the size of a no-op capture; the symbolized events file read elsewhere without perf.
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest

import etwtrace
from etwtrace._read import format_event

from test_capture import PERF_PROBLEM, PROFILES, SCRIPTS, UPSTREAM_SCRIPTS, capture, find_test_stacks

pytestmark = pytest.mark.skipif(PERF_PROBLEM is not None, reason=PERF_PROBLEM or "")


def _du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _read_with_warnings(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = list(etwtrace.read(path, **kwargs))
    return events, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _dump(path, env=None):
    return subprocess.run([sys.executable, "-m", "etwtrace", "dump", str(path)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **(env or {})))


def _names(events):
    """Every stack of every perf event as (symbol, module, Python name) triples."""
    return [(e.name, e.pid, e.timestamp,
             tuple((f.symbol, f.module, f.function["Name"] if f.function is not None else None)
                   for f in e.stack))
            for e in events]


def _uprobe_groups():
    from etwtrace._capture import probes

    tracefs = probes.find_tracefs(mount=False)
    if not tracefs:
        return None
    with open(os.path.join(tracefs, "uprobe_events")) as f:
        return {line.split("/", 1)[0][2:] for line in f if line.startswith("p:etwtrace_")}


def test_lost_chunks_are_reported_everywhere(tmp_path):
    proc, path = capture(tmp_path, "busy_threads.py", "0.6", "3", profile="Lossy")
    manifest = json.loads((path / "manifest.json").read_text())
    perf = manifest["perf"]
    assert isinstance(perf["lost_chunks"], int) and isinstance(perf["lost_samples"], int)
    assert perf["lost_chunks"] + perf["lost_samples"] > 0, perf
    closing = [ln for ln in proc.stderr.splitlines() if "capture saved to" in ln]
    assert len(closing) == 1 and "perf LOST" in closing[0], proc.stderr
    assert "etwtrace: warning: perf lost" in proc.stderr
    if perf["lost_chunks"]:
        assert f"{perf['lost_chunks']:,} chunks" in closing[0]
        # The report's health line reads this form.
        assert any("lost" in w and "chunks" in w for w in perf["warnings"])
    events, caught = _read_with_warnings(path)
    assert events and any("perf lost" in w for w in caught), caught
    dump = _dump(path)
    assert dump.returncode == 0 and dump.stdout
    assert "etwtrace: warning:" in dump.stderr and "perf lost" in dump.stderr, dump.stderr
    report = subprocess.run([sys.executable, "-m", "etwtrace", "report", str(path)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    health = [ln for ln in report.stdout.splitlines() if ln.startswith("health:")]
    assert len(health) == 1 and f" {perf['lost_chunks']:,} lost chunks" in health[0], health


def test_no_loss_and_no_warning_for_an_ordinary_capture(tmp_path):
    proc, path = capture(tmp_path, "by_arg.py", "a")
    perf = json.loads((path / "manifest.json").read_text())["perf"]
    assert perf["lost_chunks"] == 0 and perf["lost_samples"] == 0
    assert "perf LOST" not in proc.stderr and "etwtrace: warning" not in proc.stderr
    _, caught = _read_with_warnings(path)
    assert caught == []


def test_kill_9_of_the_launcher_leaves_a_readable_capture_and_stale_probes_go(tmp_path):
    path = tmp_path / "killed"
    cmd = [sys.executable, "-m", "etwtrace", "--capture", str(path), "--profile-file", str(PROFILES),
           "--capture-profile", "Quick", "--", str(SCRIPTS / "busy_threads.py"), "1.5", "1"]
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        while not (path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (path / "started").exists()
        time.sleep(0.5)
        group = f"etwtrace_{launcher.pid}"
        groups = _uprobe_groups()
        assert groups is None or group in groups
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # perf (in a process group of its own) records until the target ends, then writes perf.raw.
    log = path / "perf-record.log"
    deadline = time.monotonic() + 60
    while "Captured and wrote" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Captured and wrote" in log.read_text(errors="replace")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["complete"] is False and (path / "perf.raw").exists() and not (path / "perf.data").exists()

    # Every CPU sample perf recorded is read (how many there are depends on the machine's load).
    recorded = subprocess.run(["perf", "script", "-F", "event", "-i", str(path / "perf.raw")],
                              capture_output=True, text=True, timeout=120).stdout
    recorded = sum(1 for line in recorded.splitlines() if line.strip().startswith("cpu-clock"))
    events, caught = _read_with_warnings(path)
    assert any("incomplete capture" in w for w in caught), caught
    samples = [e for e in events if e.name == "SampledProfile"]
    assert recorded > 10 and len(samples) == recorded, (len(samples), recorded)
    spin = [e for e in samples if any(f.is_python and f.function["Name"] == "spin" for f in e.stack)]
    assert len(spin) >= len(samples) // 4, (len(spin), len(samples))
    # The reading finished the capture's events for good: the next read starts from them.
    assert (path / "events.jsonl.gz").exists()
    again, _ = _read_with_warnings(path)
    assert len([e for e in again if e.name == "SampledProfile"]) == len(samples)
    dump = _dump(path)
    assert dump.returncode == 0 and "incomplete capture" in dump.stderr

    # The next capture removes the probe group the killed launcher left in tracefs: at its
    # start, or at its end if the orphaned perf session still had the group open.
    capture(tmp_path, "basic.py", name="next.etwtrace")
    groups = _uprobe_groups()
    if groups is not None and group in groups:
        still = _processes_mentioning(str(path))
        from etwtrace._capture import probes
        kept = probes.remove_stale_groups(probes.find_tracefs(mount=False))
        pytest.fail(f"stale group {group} kept; launcher alive: {os.path.exists(f'/proc/{launcher.pid}')}; "
                    f"processes of the killed capture: {still}; removing it now: {kept or 'done'}")


def _processes_mentioning(text):
    """(pid, state, command line) of the processes whose command line holds `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0].decode()
        except (OSError, IndexError):
            continue
        if text in cmdline:
            found.append((int(entry), state, cmdline[:120]))
    return found


def test_an_events_file_cut_short_is_read_up_to_the_cut_with_a_warning(tmp_path):
    _, path = capture(tmp_path, "busy_threads.py", "0.5", "2")
    whole, caught = _read_with_warnings(path)
    assert caught == []
    data = (path / "events.jsonl.gz").read_bytes()
    (path / "events.jsonl.gz").write_bytes(data[:len(data) * 2 // 3])
    cut, caught = _read_with_warnings(path)
    assert any("cut short" in w and "events were read" in w for w in caught), caught
    assert 0 < len(cut) < len(whole)
    dump = _dump(path)
    assert "cut short" in dump.stderr


def test_a_noop_capture_is_small(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "etwtrace", "--capture", str(tmp_path / "noop"), "--",
                           str(SCRIPTS / "noop.py")], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "noop"
    assert _du(path) <= 5_000_000, _du(path)
    assert not (path / "perf.data").exists() and not (path / "buildid").exists()
    assert not (path / "perf.raw").exists()
    quoted = str(path)
    assert f"etwtrace: see where the time went: python -m etwtrace report {quoted}\n" in proc.stderr
    assert f"python -m etwtrace report {quoted} --format html -o {quoted}.html" in proc.stderr
    assert f"python -m etwtrace dump {quoted}" in proc.stderr
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["perf"]["events"] > 0


def test_a_second_of_four_busy_threads_is_small(tmp_path):
    """The Default profile: 1 s of 4 CPU-bound threads (5 s of them measured 0.3 MB here)."""
    proc = subprocess.run([sys.executable, "-m", "etwtrace", "--capture", str(tmp_path / "busy"), "--",
                           str(SCRIPTS / "busy_threads.py"), "1", "4"], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "busy"
    assert _du(path) <= 4_000_000, _du(path)
    events = list(etwtrace.read(path, names={"SampledProfile"}))
    assert len({e.thread_id for e in events}) >= 4


def test_the_events_file_is_relocatable_and_needs_no_perf(tmp_path):
    _, path = capture(tmp_path, "by_arg.py", "a", "b")
    here = _names(etwtrace.read(path))
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(path, moved)
    shutil.rmtree(path)
    there = _names(etwtrace.read(moved))
    assert there == here
    assert list(find_test_stacks(etwtrace.read(moved), UPSTREAM_SCRIPTS / "by_arg.py")) == [
        ["a", "<module>"], ["b", "a", "<module>"]]
    native = {sym for _, _, _, stack in there for sym, module, _ in stack if module and "libpython" in module}
    assert "_PyEval_EvalFrameDefault" in native or "PyObject_Vectorcall" in native, native
    # Without perf at all (another machine): the same events, named the same.
    dump = _dump(moved, env={"ETWTRACE_PERF": str(tmp_path / "no-such-perf"), "PATH": "/nonexistent"})
    assert dump.returncode == 0, dump.stderr
    assert "py:b" in dump.stdout and "_PyEval_EvalFrameDefault" in dump.stdout


def test_keep_perf_data_keeps_perf_data_and_reads_the_same_either_way(tmp_path):
    proc, path = capture(tmp_path, "by_arg.py", "a", "b", profile="QuickKeep")
    assert (path / "perf.data").exists() and (path / "buildid").is_dir()
    assert "perf --buildid-dir" in proc.stderr and "report -i" in proc.stderr
    symbolized = _names(etwtrace.read(path))
    (path / "events.jsonl.gz").unlink()  # as an older capture: perf.data through perf script
    through_perf = _names(etwtrace.read(path))
    assert through_perf == symbolized


def test_events_file_layout(tmp_path):
    _, path = capture(tmp_path, "basic.py")
    with gzip.open(path / "events.jsonl.gz", "rt") as f:
        lines = [json.loads(line) for line in f]
    assert lines[0] == {"format": "etwtrace-events", "version": 2}
    rows = [row for r in lines if "b" in r for row in r["b"]]
    assert list(lines[-1]) == ["end"] and lines[-1]["end"]["events"] == len(rows) > 0
    assert all(len(r["b"]) <= 500 for r in lines if "b" in r)
    kinds = {next(iter(r)) for r in lines[1:-1]}
    assert kinds == {"m", "y", "k", "n", "b"}
    layouts = {r["n"][0]: r["n"][1:] for r in lines if "n" in r}
    for row in rows:
        name, fields = layouts[row[0]]
        assert len(row) == 6 + len(fields)
    assert [row[3] for row in rows] == sorted(row[3] for row in rows)  # time order


def _as_version_1(path):
    """Rewrite the capture's events file in the version 1 layout (one line per event)."""
    with gzip.open(path / "events.jsonl.gz", "rt") as f:
        lines = [json.loads(line) for line in f]
    layouts = {}
    out = []
    for record in lines:
        if "format" in record:
            out.append({"format": "etwtrace-events", "version": 1})
        elif "n" in record:
            layouts[record["n"][0]] = record["n"][1:]
        elif "b" in record:
            for row in record["b"]:
                name, fields = layouts[row[0]]
                out.append({"e": name, "p": row[1], "t": row[2], "ts": row[3], "c": row[4],
                            "f": dict(zip(fields, row[6:])), "k": row[5]})
        else:
            out.append(record)
    with gzip.open(path / "events.jsonl.gz", "wt") as f:
        for record in out:
            f.write(json.dumps(record) + "\n")


def test_a_version_1_events_file_reads_the_same(tmp_path):
    _, path = capture(tmp_path, "by_arg.py", "a", "b")
    version_2 = [format_event(e) for e in etwtrace.read(path)]
    names_2 = _names(etwtrace.read(path))
    _as_version_1(path)
    events, caught = _read_with_warnings(path)
    assert caught == []
    assert [format_event(e) for e in events] == version_2
    assert _names(events) == names_2
    assert _dump(path).stdout.count("\n") == len(version_2)


def test_the_event_count_of_a_file_without_perf_scripts_summary(tmp_path):
    """perf script ending before perf_script.py's last line: the supervisor counts the file."""
    from etwtrace._read.perf_data import _count_events

    _, path = capture(tmp_path, "basic.py")
    manifest = json.loads((path / "manifest.json").read_text())
    count, pids = _count_events(str(path / "events.jsonl.gz"))
    assert count == manifest["perf"]["events"] and set(manifest["pids"]) >= pids and pids
