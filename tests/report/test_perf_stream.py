"""The report's streamed pass over perf's events (no Event list, frames named once per distinct
stack) gives the Profile that read()'s sorted, merged events give: from the events file, and
from perf.data alone (perf script, streamed as it runs). Real captures of known_shape.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import etwtrace._report.build as build
from etwtrace._report.build import Filters, build_profile

pytestmark = pytest.mark.perf

PROGRAM = Path(__file__).resolve().parents[1] / "scripts" / "report" / "known_shape.py"


@pytest.fixture(scope="module")
def kept_capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "run.etwtrace"
    proc = subprocess.run([sys.executable, "-m", "etwtrace", "--stack", "--capture", str(path), "--keep-perf-data",
                           "--", str(PROGRAM), "0.5"], capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 or "known shape done" not in proc.stdout:
        pytest.fail(f"capture failed ({proc.returncode}): {proc.stderr[-2000:]}")
    assert (path / "perf.data").exists() and (path / "events.jsonl.gz").exists()
    return path


def shape(profile):
    """Everything a report shows, with stacks spelled out as frame keys (numbering aside)."""
    def spelled(stack):
        return None if stack is None else tuple(profile.frames[i] for i in profile.stacks[stack])

    weights = {metric: sorted((pid, tid, spelled(stack), w) for (pid, tid, stack), w in table.items())
               for metric, table in profile.weights.items()}
    return {
        "weights": weights,
        "health": vars(profile.health),
        "span": (profile.start_ns, profile.end_ns, profile.sample_period_ns),
        "marks": sorted((m.pid, m.tid, m.start_ns, m.end_ns, m.text, m.kind, spelled(m.stack)) for m in profile.marks),
        "samples": [(s.pid, s.tid, s.time_ns, spelled(s.stack), s.metric, s.weight) for s in profile.samples],
        "threads": profile.threads,
        "processes": profile.processes,
    }


def read_path_profile(monkeypatch, path, **kwargs):
    """The Profile built from read()'s events instead of the stream."""
    with monkeypatch.context() as m:
        m.setattr(build, "stream_capture", lambda *a, **k: None)
        return build_profile(path, **kwargs)


def test_the_stream_is_what_the_report_reads(kept_capture, monkeypatch):
    calls = []
    real = build.stream_capture
    monkeypatch.setattr(build, "stream_capture", lambda *a, **k: calls.append(a) or real(*a, **k))
    build_profile(kept_capture)
    assert calls


@pytest.mark.parametrize("timeline", [False, True])
def test_streamed_profile_equals_the_read_one(kept_capture, monkeypatch, timeline):
    streamed = build_profile(kept_capture, timeline=timeline)
    assert streamed.health.samples > 100 and streamed.total("offcpu") > 0
    assert shape(streamed) == shape(read_path_profile(monkeypatch, kept_capture, timeline=timeline))


def test_streamed_profile_equals_the_read_one_with_filters(kept_capture, monkeypatch):
    filters = Filters(from_mark="begin", to_mark="end")
    streamed = build_profile(kept_capture, filters=filters)
    assert 0 < streamed.total("cpu")
    assert shape(streamed) == shape(read_path_profile(monkeypatch, kept_capture, filters=filters))


def test_perf_data_alone_streams_the_same_profile(kept_capture):
    from_file = build_profile(kept_capture, timeline=True)
    events = kept_capture / "events.jsonl.gz"
    aside = kept_capture / "events.aside"
    os.replace(events, aside)
    try:
        through_perf = build_profile(kept_capture, timeline=True)
    finally:
        os.replace(aside, events)
    assert shape(through_perf) == shape(from_file)


def test_an_abandoned_stream_ends_perf_script(kept_capture):
    """The report stopping early (an error, Ctrl-C) leaves no perf script running."""
    from etwtrace._read.capture import stream_capture
    from etwtrace._bundle import load_manifest

    events = kept_capture / "events.jsonl.gz"
    aside = kept_capture / "events.aside"
    os.replace(events, aside)
    try:
        stream = stream_capture(str(kept_capture), load_manifest(str(kept_capture)), {"SampledProfile"})
        first = next(stream)
        assert first.name == "SampledProfile" and first.frame_tuples()
        frame = first.stack[0]
        assert int(frame) == first.frame_tuples()[0][0] and frame.symbol == first.frame_tuples()[0][1]
        proc = stream.gi_frame.f_locals["events"].gi_frame.f_locals["proc"]
        stream.close()
        assert proc.poll() is not None
    finally:
        os.replace(aside, events)
