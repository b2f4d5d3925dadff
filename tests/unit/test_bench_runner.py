"""The benchmark runner (benchmarks/run.py) in its smallest configuration, for real: every tool of
its table on the running interpreter, one tiny workload, one round. Checks that the JSON and
Markdown it writes account for every tool (a measured row or a skip with its reason), not the
timings."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"


def tool_names():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from suite import tools
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return [t.name for t in tools.TOOLS], {t.name: t.since for t in tools.TOOLS}


def test_smallest_configuration_accounts_for_every_tool(tmp_path):
    prefix = tmp_path / "result"
    proc = subprocess.run([sys.executable, str(RUN), "--current", "--workloads", "fib", "--scale", "0.01",
                           "--reps", "1", "--no-callgrind", "--no-capture-costs", "--output", str(prefix)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(Path(f"{prefix}.json").read_text())
    markdown = Path(f"{prefix}.md").read_text()
    (version, vr), = results["versions"].items()
    assert version == "%d.%d" % sys.version_info[:2]
    names, since = tool_names()
    assert list(vr["tools"]) == names
    for name in names:
        info = vr["tools"][name]
        if "skipped" in info:
            assert info["skipped"].strip(), name
            assert f"{name}: skipped: {info['skipped']}" in proc.stdout
            assert f"* {name}: skipped:" in markdown
        else:
            cell = vr["runs"]["fib"][name]
            assert "failed" not in cell, (name, cell)
            assert cell["reps"] == 1 and cell["median_s"] > 0 and cell["ratio"] > 0
            assert f"| {name} |" in markdown
    # What must run wherever the tests run: the baseline, etwtrace's own modes, cProfile, and
    # CPython's perf support from the version that has it.
    for name in ("untraced", "etwtrace loaded, idle", "etwtrace stack", "etwtrace instrumented", "cProfile"):
        assert "skipped" not in vr["tools"][name], vr["tools"][name]
    for name in ("-X perf", "-X perf_jit"):
        assert ("skipped" in vr["tools"][name]) == (sys.version_info[:2] < since[name])


def test_user_mistakes_are_one_line(tmp_path):
    for args, text in ((["--workloads", "nope"], "unknown workload nope"),
                       (["--tools", "nope"], "unknown tool nope"),
                       (["--merge", str(tmp_path / "missing.json"), "--output", str(tmp_path / "x")], "cannot read")):
        proc = subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert text in proc.stderr and "Traceback" not in proc.stderr
