"""Chrome trace JSON writer: loads as JSON, names processes and threads, and every thread's
duration events are balanced and properly nested (what ui.perfetto.dev and chrome://tracing
require); stacks referenced by samples and marks resolve through `stackFrames`."""

import io
import json

from etwtrace._report import perfetto
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import PYTHON, FrameKey, Profile, Sample, Slice


def render(profile, **options):
    out = io.BytesIO()
    perfetto.write(profile, out, ReportOptions(**options))
    return json.loads(out.getvalue().decode())


def assert_nested(events):
    """Per (pid, tid): B/E pairs balanced and by name, X events nested inside each other."""
    by_thread = {}
    for event in events:
        if event["ph"] in ("B", "E", "X"):
            by_thread.setdefault((event["pid"], event["tid"]), []).append(event)
    for thread, thread_events in by_thread.items():
        intervals = []
        open_b = []
        for event in sorted(thread_events, key=lambda e: e["ts"]):
            if event["ph"] == "B":
                open_b.append(event)
            elif event["ph"] == "E":
                begin = open_b.pop()
                intervals.append((begin["ts"], event["ts"]))
            else:
                assert event["dur"] >= 0
                intervals.append((event["ts"], event["ts"] + event["dur"]))
        assert open_b == [], f"unclosed B events on {thread}"
        enclosing = []
        for start, end in sorted(intervals, key=lambda i: (i[0], -i[1])):
            while enclosing and enclosing[-1] <= start:
                enclosing.pop()
            assert not enclosing or end <= enclosing[-1] + 1e-6, f"overlap on {thread} at {start}"
            enclosing.append(end)


def stack_labels(document, ident):
    """Frame labels of a stackFrames id, root first."""
    frames = document["stackFrames"]
    labels = []
    while ident is not None:
        labels.append(frames[ident]["name"])
        ident = frames[ident].get("parent")
    return labels[::-1]


def labels_of(profile, stack):
    return [frame.label for frame in profile.frames_of(stack)]


def test_loads_with_metadata(synthetic_profile):
    from etwtrace._version import __version__

    document = render(synthetic_profile, title="run 1")
    assert document["displayTimeUnit"] == "ns"
    assert document["otherData"]["exporter"] == f"etwtrace {__version__}"
    assert document["otherData"]["title"] == "run 1"
    events = document["traceEvents"]
    names = {(e["name"], e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names[("process_name", 100, 100)] == "python app.py"
    assert names[("thread_name", 100, 100)] == "MainThread"
    assert names[("thread_name", 100, 101)] == "worker"
    assert all(e["ts"] >= 0 for e in events if "ts" in e)


def test_calls_are_nested_complete_events(synthetic_profile):
    events = render(synthetic_profile)["traceEvents"]
    assert_nested(events)
    calls = [e for e in events if e["ph"] == "X" and e["cat"] == PYTHON]
    assert len(calls) == len(synthetic_profile.slices)
    hot = next(e for e in calls if e["name"] == "hot (/src/app.py:20)")
    assert hot["args"] == {"file": "/src/app.py", "line": 20}
    assert (hot["pid"], hot["tid"], hot["ts"], hot["dur"]) == (100, 100, 2.0, 599_998.0)
    outer = next(e for e in calls if e["name"].startswith("<module>"))
    assert (outer["ts"], outer["dur"]) == (0.0, 800_000.0)


def test_offcpu_spans(synthetic_profile):
    document = render(synthetic_profile)
    offcpu = [e for e in document["traceEvents"] if e["ph"] == "X" and e["cat"] == "offcpu"]
    assert len(offcpu) == 1
    span = offcpu[0]
    assert (span["tid"], span["ts"], span["dur"]) == (101, 700_000.0, 250_000.0)
    stack = next(s.stack for s in synthetic_profile.samples if s.metric == "offcpu")
    assert stack_labels(document, span["sf"]) == labels_of(synthetic_profile, stack)
    assert span["args"]["switched out in"] == "ksys_write [kernel.kallsyms]"


def test_marks(synthetic_profile):
    document = render(synthetic_profile)
    events = [e for e in document["traceEvents"] if e.get("cat") == "mark"]
    instants = {e["name"]: e for e in events if e["ph"] == "i"}
    assert instants["start"]["s"] == "t" and instants["start"]["ts"] == 5.0
    here = instants["here"]
    assert stack_labels(document, here["sf"])[-1] == "hot (/src/app.py:20)"
    begin = [e for e in events if e["ph"] == "b"]
    end = [e for e in events if e["ph"] == "e"]
    assert len(begin) == len(end) == 1
    assert begin[0]["id"] == end[0]["id"] and begin[0]["name"] == end[0]["name"] == "phase one"
    assert (begin[0]["ts"], end[0]["ts"]) == (10.0, 500_000.0)


def test_cpu_samples_name_their_stacks(synthetic_profile):
    document = render(synthetic_profile)
    samples = document["samples"]
    cpu = [s for s in synthetic_profile.samples if s.metric == "cpu"]
    assert len(samples) == len(cpu)
    assert [s["ts"] for s in samples] == sorted(s["ts"] for s in samples)
    for written, original in zip(samples, sorted(cpu, key=lambda s: s.time_ns)):
        assert (written["pid"], written["tid"], written["weight"]) == (original.pid, original.tid, 1)
        assert stack_labels(document, written["sf"]) == labels_of(synthetic_profile, original.stack)
    # one stackFrames entry per distinct prefix: <module>, main, hot, compress, deflate, cold, write
    assert len(document["stackFrames"]) == 7


def test_damaged_timeline_still_nests(synthetic_profile):
    p = synthetic_profile
    t0 = p.start_ns
    p.slices += [Slice(100, 100, t0 + 700_000_000, t0 + 900_000_000, 2, 2),  # ends after its caller
                 Slice(100, 100, t0 + 950_000_000, t0 + 940_000_000, 3, 0)]  # ends before it starts
    p.samples.append(Sample(100, 100, t0 + 500_000_000, 0, "offcpu", 200_000_000))  # crosses calls
    assert_nested(render(p)["traceEvents"])


def test_deterministic(synthetic_profile):
    first, second = io.BytesIO(), io.BytesIO()
    perfetto.write(synthetic_profile, first, ReportOptions())
    perfetto.write(synthetic_profile, second, ReportOptions())
    assert first.getvalue() == second.getvalue()


def test_large_profile_is_linear():
    # 100k distinct stacks, each sampled once, and 20k calls; built without the JSON round
    # trip, which only costs what the json module costs.
    p = Profile(source="big", start_ns=0, end_ns=10**9)
    frames = [p.frame(FrameKey(PYTHON, f"f{i}", "/big.py", i + 1)) for i in range(1000)]
    stacks = [p.stack((frames[0], frames[1 + i % 999], frames[1 + (i // 999) % 999])) for i in range(100_000)]
    p.samples += [Sample(1, 1 + i % 4, i * 1000, stacks[i], "cpu", 1) for i in range(100_000)]
    p.slices += [Slice(1, 1, i * 5000, i * 5000 + 4000, frames[i % 1000], 0) for i in range(20_000)]
    document = perfetto.build(p, ReportOptions())
    assert len(document["samples"]) == 100_000
    assert_nested(document["traceEvents"])
