"""speedscope writer: the file validates against speedscope's own JSON schema (vendored in
data/, see data/speedscope-file-format-schema.md) and says what the synthetic profile holds."""

import io
import json
import os
from pathlib import Path

import pytest

from etwtrace._report import speedscope
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import PYTHON, FrameKey, Profile, Slice

SCHEMA = Path(__file__).parent / "data" / "speedscope-file-format-schema.json"


def render(profile, **options):
    out = io.BytesIO()
    speedscope.write(profile, out, ReportOptions(**options))
    return json.loads(out.getvalue().decode())


def schema_validator():
    try:
        import jsonschema
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("jsonschema is not installed in the test venv (pip install jsonschema)")
        pytest.skip("needs the jsonschema package (pip install jsonschema)")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft6Validator(schema)


def assert_balanced(events):
    """speedscope's rule: `at` never decreases and each close matches the innermost open."""
    open_frames = []
    last = float("-inf")
    for event in events:
        assert event["at"] >= last
        last = event["at"]
        if event["type"] == "O":
            open_frames.append(event["frame"])
        else:
            assert open_frames and open_frames.pop() == event["frame"]
    assert open_frames == []


def test_validates_against_speedscope_schema(synthetic_profile):
    validator = schema_validator()
    document = render(synthetic_profile)
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(str(e) for e in errors[:5])


def test_schema_catches_a_broken_file(synthetic_profile):
    # The vendored schema must really constrain: a profile missing its weights fails.
    validator = schema_validator()
    document = render(synthetic_profile)
    del document["profiles"][0]["weights"]
    assert list(validator.iter_errors(document))


def test_frames_and_header(synthetic_profile):
    from etwtrace._version import __version__

    document = render(synthetic_profile, title="my run")
    assert document["exporter"] == f"etwtrace {__version__}"
    assert document["name"] == "my run"
    assert render(synthetic_profile)["name"] == synthetic_profile.source
    frames = document["shared"]["frames"]
    assert len(frames) == len(synthetic_profile.frames)
    hot = synthetic_profile.frames.index(FrameKey(PYTHON, "hot", "/src/app.py", 20))
    assert frames[hot] == {"name": "hot", "file": "/src/app.py", "line": 20}
    deflate = [f for f in frames if f["name"].startswith("deflate")]
    assert deflate == [{"name": "deflate [libz.so.1]", "file": "/usr/lib/x86_64-linux-gnu/libz.so.1"}]


def test_sampled_profiles_per_metric_and_thread(synthetic_profile):
    profiles = render(synthetic_profile)["profiles"]
    sampled = [p for p in profiles if p["type"] == "sampled"]
    names = [p["name"] for p in sampled]
    # cpu on both threads, offcpu on the worker, instrumented and calls on the main thread
    assert len(sampled) == 5, names
    cpu_main = next(p for p in sampled if p["name"].startswith("CPU samples") and "MainThread" in p["name"])
    assert "python app.py (pid 100)" in cpu_main["name"]
    assert cpu_main["unit"] == "none"
    assert sorted(cpu_main["weights"]) == [300, 400]
    assert cpu_main["endValue"] == 700
    frames = render(synthetic_profile)["shared"]["frames"]
    for stack, weight in zip(cpu_main["samples"], cpu_main["weights"]):
        names_in_stack = [frames[i]["name"] for i in stack]
        assert names_in_stack[:3] == ["<module>", "main", "hot"]  # root first
    offcpu = next(p for p in sampled if p["name"].startswith("off-CPU"))
    assert offcpu["unit"] == "nanoseconds" and offcpu["weights"] == [250_000_000]
    instrumented = next(p for p in sampled if p["name"].startswith("instrumented"))
    assert instrumented["unit"] == "nanoseconds"
    assert sum(instrumented["weights"]) == 800_000_000


def test_one_metric_when_asked(synthetic_profile):
    profiles = render(synthetic_profile, metric="cpu")["profiles"]
    assert [p["type"] for p in profiles] == ["sampled", "sampled"]
    assert all(p["name"].startswith("CPU samples") for p in profiles)


def test_evented_profile_from_slices(synthetic_profile):
    profiles = render(synthetic_profile)["profiles"]
    evented = [p for p in profiles if p["type"] == "evented"]
    assert len(evented) == 1
    events = evented[0]["events"]
    assert_balanced(events)
    assert len(events) == 2 * len(synthetic_profile.slices)
    assert events[0] == {"type": "O", "at": 0, "frame": synthetic_profile.slices[0].frame}
    assert events[-1] == {"type": "C", "at": 800_000_000, "frame": synthetic_profile.slices[0].frame}
    assert evented[0]["endValue"] == 1_000_000_000


def test_overlapping_slices_are_nested(synthetic_profile):
    # A damaged trace: a call that ends after its caller, and one that ends before it starts.
    p = synthetic_profile
    t0 = p.start_ns
    p.slices += [Slice(100, 100, t0 + 700_000_000, t0 + 900_000_000, 2, 2),
                 Slice(100, 100, t0 + 950_000_000, t0 + 940_000_000, 3, 0)]
    schema_validator().validate(render(p))
    evented = [q for q in render(p)["profiles"] if q["type"] == "evented"]
    assert_balanced(evented[0]["events"])


def test_large_profile_is_linear():
    p = Profile(source="big", start_ns=0, end_ns=10**9)
    frames = [p.frame(FrameKey(PYTHON, f"f{i}", "/big.py", i + 1)) for i in range(1000)]
    for i in range(100_000):
        stack = p.stack((frames[0], frames[1 + i % 999], frames[1 + (i // 999) % 999]))
        p.add("cpu", 1, 1 + i % 8, stack, 1 + i % 5)
    for i in range(50_000):
        p.slices.append(Slice(1, 1, i * 1000, i * 1000 + 900, frames[i % 1000], 0))
    document = render(p)
    assert sum(len(q.get("samples", ())) for q in document["profiles"]) == 100_000
    # Frames are shared by every profile of the file, each listed once.
    assert len(document["shared"]["frames"]) == 1000
