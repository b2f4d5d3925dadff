"""The Profile builder and the summary on real captures of tests/scripts/report/known_shape.py.

Two captures per CPython (stack sampling and instrumented), made once for the module: they
take seconds each.
"""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from etwtrace._report import summary
from etwtrace._report.build import Filters, build_profile
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import KERNEL, NATIVE, PYTHON, TAG

pytestmark = pytest.mark.perf

PROGRAM = Path(__file__).resolve().parents[1] / "scripts" / "report" / "known_shape.py"
COUNTED_CALLS = 1234
INTERPRETER_MODULES = re.compile(r"^(libpython3[\d.]*\.so.*|python3?[\d.]*|_etwtrace.*\.so)$")


def capture(tmp_path_factory, *mode):
    path = tmp_path_factory.mktemp("report") / "run.etwtrace"
    proc = subprocess.run([sys.executable, "-m", "etwtrace", *mode, "--capture", str(path), "--", str(PROGRAM),
                           "1.0"], capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 or "known shape done" not in proc.stdout:
        pytest.fail(f"capture failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return path


@pytest.fixture(scope="module")
def stack_capture(tmp_path_factory):
    return capture(tmp_path_factory, "--stack")


@pytest.fixture(scope="module")
def instrumented_capture(tmp_path_factory):
    return capture(tmp_path_factory, "--instrument")


@pytest.fixture(scope="module")
def stack_profile(stack_capture):
    return build_profile(stack_capture)


@pytest.fixture(scope="module")
def instrumented_profile(instrumented_capture):
    return build_profile(instrumented_capture)


def python_shares(profile, metric="cpu"):
    """{qualname: (self share, total share)} of the Python frames."""
    weights = profile.stack_weights(metric)
    total = sum(weights.values())
    self_w, total_w = {}, {}
    for stack, w in weights.items():
        names = [profile.frames[f].name for f in profile.stacks[stack] if profile.frames[f].kind == PYTHON]
        if names:
            self_w[names[-1]] = self_w.get(names[-1], 0) + w
        for name in set(names):
            total_w[name] = total_w.get(name, 0) + w
    return {n: (self_w.get(n, 0) / total, total_w[n] / total) for n in total_w}


def render(profile, **options):
    out = io.BytesIO()
    summary.write(profile, out, ReportOptions(**options))
    return out.getvalue().decode("utf-8")


@pytest.mark.parametrize("mode", ["stack", "instrumented"])
def test_hot_and_cold_share_the_burn_range_70_30(request, mode):
    capture_path = request.getfixturevalue(f"{mode}_capture")
    profile = build_profile(capture_path, filters=Filters(range_text="burn"))
    shares = python_shares(profile)
    hot, cold = shares["hot"][0], shares["cold"][0]
    assert hot + cold > 0.9, shares
    assert abs(hot / (hot + cold) - 0.70) <= 0.05, shares
    assert shares["burn"][1] > 0.95  # everything in the range is under burn()
    text = render(profile)
    line = next(line for line in text.splitlines() if re.search(r"\bhot \(known_shape\.py:\d+\)", line))
    assert abs(float(line.split("%")[0]) - 100 * hot) < 0.1


def test_python_frames_are_the_thunks_with_their_source(stack_profile):
    frames = {f.name: f for f in stack_profile.frames if f.kind == PYTHON}
    assert frames["hot"].file == str(PROGRAM) and frames["hot"].line > 0
    assert stack_profile.mode == "stack" and stack_profile.sample_period_ns > 0
    assert stack_profile.health.samples > 500 and stack_profile.health.context_switches > 0
    assert any(f.kind == KERNEL for f in stack_profile.frames)


@pytest.mark.parametrize("mode", ["stack", "instrumented"])
def test_zlib_time_is_in_libz_under_squeeze(request, mode):
    profile = request.getfixturevalue(f"{mode}_profile")
    text = render(profile)
    section = text.split("Where the hottest Python functions spend their self time")[1]
    squeeze = re.split(r"\n  (?! )", section.split("squeeze (known_shape.py")[1])[0]
    assert re.search(r"zlib_compress \[zlib\.cpython-[^\]]+\]\s+C extension", squeeze), squeeze
    assert re.search(r"leaf .*\[libz\.so[^\]]*\]\s+library", squeeze), squeeze


def test_no_interpreter_frame_is_left_between_two_python_frames(stack_profile, instrumented_profile):
    for profile in (stack_profile, instrumented_profile):
        checked = 0
        for stack in profile.stacks:
            frames = [profile.frames[f] for f in stack]
            python = [i for i, k in enumerate(frames) if k.kind == PYTHON]
            for k in frames[python[0] + 1:python[-1]] if len(python) > 1 else []:
                checked += 1
                if k.kind == TAG:
                    assert "/" in k.name, [f.label for f in frames]
                elif k.kind == NATIVE and k.file:
                    assert not INTERPRETER_MODULES.match(os.path.basename(k.file)), [f.label for f in frames]
        tags = {k.name for k in profile.frames if k.kind == TAG}
        assert "[Python runtime]/Import Machinery" in tags, tags
    raw = build_profile(stack_profile.source, ReportOptions(raw=True))
    assert any(k.name == "_PyEval_EvalFrameDefault" for k in raw.frames)
    assert not any(k.kind == TAG for k in raw.frames)


def test_instrumented_counts_calls_exactly(instrumented_profile):
    profile = instrumented_profile
    counted = [s for f, s in profile.functions.items() if profile.frames[f].name == "counted"]
    assert [s.calls for s in counted] == [COUNTED_CALLS]
    by_stack = sum(w for s, w in profile.stack_weights("calls").items()
                   if profile.frames[profile.stacks[s][-1]].name == "counted")
    assert by_stack == COUNTED_CALLS
    hot = next(s for f, s in profile.functions.items() if profile.frames[f].name == "hot")
    assert 0 < hot.exclusive_ns <= hot.inclusive_ns
    recurse = next(s for f, s in profile.functions.items() if profile.frames[f].name == "recurse")
    machinery = next(s for f, s in profile.functions.items() if profile.frames[f].name == "machinery")
    assert recurse.inclusive_ns < machinery.inclusive_ns  # recursion counted once
    text = render(profile, top=1000)
    assert re.search(rf"\n\s+{COUNTED_CALLS:,}\s+[\d.,]+\s+[\d.,]+\s+[\d.]+%\s+[\d.,]+\s+counted \(", text), text


def test_instrumented_samples_get_their_python_stack(instrumented_profile):
    shares = python_shares(instrumented_profile)
    assert shares["main"][1] > 0.5 and shares["hot"][0] > 0.1
    assert instrumented_profile.health.unmerged_samples < instrumented_profile.health.samples * 0.05


def test_offcpu_time_of_the_nap(stack_profile):
    weights = stack_profile.stack_weights("offcpu")
    nap = sum(w for s, w in weights.items() if any(stack_profile.frames[f].name == "nap"
                                                   for f in stack_profile.stacks[s]))
    assert 140e6 <= nap <= 400e6
    assert "nap (known_shape.py" in render(stack_profile).split("Off-CPU time")[1]


@pytest.mark.parametrize("mode", ["stack", "instrumented"])
def test_marks_and_ranges(request, mode):
    profile = request.getfixturevalue(f"{mode}_profile")
    marks = {(m.kind, m.text): m for m in profile.marks}
    assert ("mark", "begin") in marks and ("mark", "end") in marks
    burn, zlib = marks[("range", "burn")], marks[("range", "zlib")]
    # 1 s of CPU time: at least 1 s of wall time, more on a loaded machine.
    assert 0.9e9 <= burn.end_ns - burn.start_ns <= 30e9
    assert burn.end_ns <= zlib.start_ns
    assert re.search(r"range\s+zlib\s+[\d,.]+ ms", render(profile))


def test_from_to_window_and_file_filter(stack_capture, stack_profile):
    window = build_profile(stack_capture, filters=Filters(from_mark="begin", to_mark="end"))
    assert 0 < window.total("cpu") < stack_profile.total("cpu")
    shares = python_shares(window)
    assert shares["main"][1] > 0.95
    only = build_profile(stack_capture, filters=Filters(include=[str(PROGRAM.parent / "known_shape_imported")]))
    assert 0 < only.total("cpu") < stack_profile.total("cpu")
    assert "_work" in python_shares(only) and "hot" not in python_shares(only)


def test_the_summary_fits_and_ends_with_the_health_line(stack_profile, instrumented_profile):
    for profile in (stack_profile, instrumented_profile):
        text = render(profile, per_thread=True)
        lines = text.rstrip("\n").splitlines()
        assert all(len(line) <= 100 for line in lines), max(lines, key=len)
        health = [i for i, line in enumerate(lines) if line.startswith("health: ")]
        assert len(health) == 1
        assert all(line.startswith(("        ", "WARNING: ")) for line in lines[health[0] + 1:])
        assert re.match(r"health: [\d,]+ samples, [\d,]+ switches, 0 lost chunks", lines[health[0]])


def _trace_of(capture):
    (trace,) = sorted((Path(capture) / "traces").glob("*.etwtrace"))
    return str(trace)


def _by_stack(native):
    nodes = native["nodes"]

    def fids(node):
        out = []
        while node is not None:
            out.append(nodes[node][1])
            node = nodes[node][0]
        return tuple(reversed(out))

    stacks = {(tid, fids(node)): (self_ns, calls) for tid, node, calls, self_ns, _incl in native["stacks"]
              if self_ns or calls}
    totals = {fid: (calls, inclusive, exclusive) for fid, calls, inclusive, exclusive in native["function_totals"]}
    return stacks, totals


def test_native_aggregate_equals_the_python_one(instrumented_capture):
    from python_aggregate import python_aggregate

    from etwtrace._report.trace_profile import _totals_of_nodes, native_aggregate, open_trace

    trace = _trace_of(instrumented_capture)
    python = python_aggregate(open_trace(trace))
    native = native_aggregate(trace)
    nodes = native["nodes"]

    def fids(node):
        out = []
        while node is not None:
            out.append(nodes[node][1])
            node = nodes[node][0]
        return tuple(reversed(out))

    stacks = {(tid, fids(node)): (self_ns, calls) for tid, node, calls, self_ns, _incl in native["stacks"]}
    assert stacks == python["stacks"]
    totals = {fid: (calls, inclusive, exclusive) for fid, calls, inclusive, exclusive in native["function_totals"]}
    assert totals == python["function_stats"]
    assert {f: t for f, *t in _totals_of_nodes(native, [True] * len(nodes))} == {f: list(t) for f, t in totals.items()}
    tid = max(native["threads"], key=lambda t: sum(s[3] for s in native["stacks"] if s[0] == t))
    one = python_aggregate(open_trace(trace), tids={tid})
    kept = [s[0] == tid for s in native["stacks"]]
    assert {f: tuple(t) for f, *t in _totals_of_nodes(native, kept)} == one["function_stats"]


def test_windowed_native_aggregate_equals_the_python_one(instrumented_capture):
    """--from/--to/--range clip natively: the same figures as clipping event by event."""
    from python_aggregate import python_aggregate

    from etwtrace._report.trace_profile import native_aggregate, open_trace

    trace = _trace_of(instrumented_capture)
    whole = native_aggregate(trace)
    first, last = whole["first_ns"], whole["last_ns"]
    third = (last - first) // 3
    for spans in ([(first + third, last - third)], [(first, first + third // 2), (last - third, last)],
                  [(first + 10, first + 20)], [(0, 1 << 62)]):
        python = python_aggregate(open_trace(trace), spans=spans)
        stacks, totals = _by_stack(native_aggregate(trace, spans))
        assert stacks == python["stacks"], spans
        assert totals == {f: t for f, t in python["function_stats"].items() if any(t)}, spans
    assert _by_stack(native_aggregate(trace, [(0, 1 << 62)])) == _by_stack(whole)


def test_a_trace_file_reports_the_same_figures_natively_and_event_by_event(instrumented_capture):
    trace = _trace_of(instrumented_capture)
    native = build_profile(trace)
    assert native.mode == "trace" and native.total("calls") > COUNTED_CALLS
    # A window that spans the whole trace takes the event-by-event path: the same figures.
    everything = build_profile(trace, filters=Filters(from_mark="begin"))
    first_mark = min(m.start_ns for m in native.marks if m.text == "begin")
    by_name = lambda p: {p.frames[f].name: s for f, s in p.functions.items()}  # noqa: E731
    assert by_name(everything)["counted"].calls == by_name(native)["counted"].calls == COUNTED_CALLS
    assert by_name(everything)["hot"] == by_name(native)["hot"]  # hot runs after "begin"
    assert {(m.kind, m.text) for m in native.marks} >= {("mark", "begin"), ("range", "burn")}
    assert native.start_ns <= first_mark <= native.end_ns
    for tid in {t for (_p, t, _s) in native.weights["calls"]}:
        only = build_profile(trace, filters=Filters(tids=[tid]))
        assert only.total("calls") == sum(w for (_p, t, _s), w in native.weights["calls"].items() if t == tid)


def test_the_timeline_of_a_trace_is_bounded(instrumented_capture):
    from etwtrace._report import trace_profile

    trace = _trace_of(instrumented_capture)
    full = build_profile(trace, timeline=True)
    assert len(full.slices) == full.total("calls") and not full.health.notes
    assert any(m.kind == "stack" and m.stack is not None for m in full.marks) == any(
        m.kind == "stack" for m in full.marks)
    original = trace_profile.SLICE_LIMIT
    try:
        trace_profile.collect_slices.__defaults__ = (100,)
        capped = build_profile(trace, timeline=True)
    finally:
        trace_profile.collect_slices.__defaults__ = (original,)
    assert len(capped.slices) == 100 and capped.total("calls") == full.total("calls")
    assert any("timeline shows only the first" in n for n in capped.health.notes), capped.health.notes
