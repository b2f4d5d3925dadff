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
            if name == "etwtrace sampler":
                # Its samples are counted during the work only, against the program's CPU time then.
                assert cell["samples"] is not None and cell["sample_fraction"] is not None, cell
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


def test_merge_takes_only_measured_cells_from_a_later_run():
    # A run of a few tools completes or redoes those tools' cells; a --callgrind-only run (no
    # rounds: every cell "no run") adds its counts and changes no timing.
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    run = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    timing = {"tools": {"untraced": {}, "A": {}, "B": {"skipped": "could not attach"}},
              "runs": {"fib": {"untraced": {"median_s": 1.0}, "A": {"ratio": 2.0}, "B": {"failed": "skipped"}}}}
    supplement = {"tools": {"untraced": {}, "B": {}},
                  "runs": {"fib": {"untraced": {"median_s": 1.1}, "B": {"ratio": 1.5}}}}
    counts_only = {"tools": {"untraced": {}, "A": {}, "B": {}},
                   "runs": {"fib": {"untraced": {"failed": "no run"}, "A": {"failed": "no run"},
                                    "B": {"failed": "no run"}}}}
    into = json.loads(json.dumps(timing))
    run.merge_tools(into, supplement)
    run.merge_tools(into, counts_only)
    assert into["runs"]["fib"] == {"untraced": {"median_s": 1.0}, "A": {"ratio": 2.0}, "B": {"ratio": 1.5}}
    assert into["tools"]["B"] == {}


def test_workload_reports_the_programs_own_cpu_time_during_the_work(tmp_path):
    # What a CPU-time sampler is asked for: the main thread's and every `threading` thread's CPU
    # time from the start to the end of the work (the threads' own clocks, summed).
    result = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "workload.py"), "threaded", "0.5", str(result)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(result.read_text())
    assert figures["start"] < figures["end"]
    assert figures["end"] - figures["start"] >= figures["elapsed"]
    # Four workers on at most the machine's CPUs: the program's CPU is most of the work's.
    assert 0.8 * figures["work_cpu"] <= figures["program_cpu"] <= figures["work_cpu"] * 1.01, figures
