"""One run recording the instrumented timeline and the sampler's samples together, on one
clock (`--instrument --sampler`, InstrumentedTracer(samples=True)): the samples go to a
companion file, and read() of the directory gives one timeline in which each sample lands
inside the calls the instrumented events say were running then."""

import os
import subprocess
import sys
import textwrap

import etwtrace

PROGRAM = """\
def leaf(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def middle(k):
    for _ in range(k):
        leaf(20000)

def top():
    for _ in range(30):
        middle(5)

top()
print("done")
"""
FUNCTIONS = {"leaf", "middle", "top"}


def run(tmp_path, *options, source=PROGRAM):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    traces = tmp_path / "traces"
    traces.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "etwtrace", *options, "--", str(script)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, env=dict(os.environ, ETWTRACE_TRACE_DIR=str(traces)))
    return proc, traces


def check_one_timeline(traces):
    names = sorted(os.listdir(traces))
    assert len(names) == 2 and names[1] == names[0].replace(".etwtrace", ".samples.etwtrace"), names
    events = list(etwtrace.read(str(traces)))
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    stacks = {}  # thread -> the instrumented stack, root first
    agree = disagree = 0
    for e in events:
        stack = stacks.setdefault(e.thread_id, [])
        if e.name == "PythonFunctionPush":
            stack.append(e.stack[0].name)
        elif e.name == "PythonFunctionPop" and stack:
            stack.pop()
        elif e.name == "SampledProfile":
            sampled = [f.name for f in e.stack if f.is_python and f.name in FUNCTIONS]
            if sampled:
                running = [name for name in reversed(stack) if name in FUNCTIONS]
                if sampled == running:
                    agree += 1
                else:
                    disagree += 1
    # Each sample inside the very calls the instrumented events show (a sample within a few
    # microseconds of a call or return may fall either side of it).
    assert agree >= 100 and agree >= 0.95 * (agree + disagree), (agree, disagree)


def test_launcher_records_both_on_one_clock(tmp_path):
    proc, traces = run(tmp_path, "--instrument", "--sampler", "--sample-rate", "1000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    written = proc.stderr.strip()
    assert written.startswith("etwtrace: instrumented mode writes ") and ".samples.etwtrace" in written, written
    check_one_timeline(traces)
    # The report of the directory has both: the samples' profile and the exact call figures.
    report = subprocess.run([sys.executable, "-m", "etwtrace", "report", str(traces)], capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 0, report.stderr
    assert "mode: instrumented, with the sampler's samples" in report.stdout, report.stdout[:300]
    assert "Python functions by CPU time" in report.stdout and "Exact figures from the instrumented trace" in report.stdout


def test_api_records_both_on_one_clock(tmp_path):
    source = PROGRAM.replace("top()\n", textwrap.dedent("""\
        import etwtrace
        tracer = etwtrace.InstrumentedTracer(samples=True, sample_rate=1000)
        with tracer:
            assert tracer.samples_path.endswith(".samples.etwtrace")
            top()
        assert tracer.samples_path is None
        """))
    script = tmp_path / "app.py"
    script.write_text(source)
    traces = tmp_path / "traces"
    traces.mkdir()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ETWTRACE_TRACE_DIR=str(traces)))
    assert proc.returncode == 0, proc.stderr
    check_one_timeline(traces)


def test_modes_that_do_not_go_together(tmp_path):
    for options, text in ((["--stack", "--sampler"], "--stack and --sampler cannot be used together"),
                          (["--instrument", "--sample-rate", "100"], "--sample-rate only applies to the sampler")):
        proc, _ = run(tmp_path, *options)
        assert proc.returncode != 0 and text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    try:
        etwtrace.InstrumentedTracer(sample_rate=100)
    except ValueError as e:
        assert "samples=True" in str(e)
    else:
        raise AssertionError("sample_rate without samples=True was accepted")


def test_capture_holds_both_files_and_no_perf_samples(tmp_path):
    # The sampler samples itself; perf would only add a second set of samples.
    import json

    capture = tmp_path / "run.etwtrace"
    proc, _ = run(tmp_path, "--instrument", "--sampler", "--sample-rate", "1000", "--capture", str(capture))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((capture / "manifest.json").read_text())
    assert manifest["mode"] == "instrumented+sampler" and not (capture / "perf.data").exists()
    check_one_timeline(capture / "traces")
    assert {e.get("Event") for e in etwtrace.read(str(capture)) if e.name == "SampledProfile"} == {"task-clock"}
