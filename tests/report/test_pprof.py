"""pprof writer: read back with protobuf, and by the real consumer, ``go tool pprof`` (Debian's
golang-go), which must see the synthetic profile's hot function, its file:line and threads."""

import gzip
import io
import os
import re
import shutil
import subprocess
import sys

import pytest

from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import NATIVE, PYTHON, FrameKey, Profile


def need(package, why):
    if os.environ.get("CI"):
        pytest.fail(f"{why} is missing in CI ({package})")
    pytest.skip(f"needs {why} ({package})")


@pytest.fixture
def proto():
    try:
        from etwtrace._report import pprof_proto
    except ImportError:
        need("pip install protobuf", "the protobuf package")
    return pprof_proto


def render(profile, **options):
    from etwtrace._report import pprof

    out = io.BytesIO()
    pprof.write(profile, out, ReportOptions(**options))
    return out.getvalue()


def decode(proto, data):
    return proto.Profile.FromString(gzip.decompress(data))


def test_decodes_back(proto, synthetic_profile):
    message = decode(proto, render(synthetic_profile))
    strings = message.string_table
    assert strings[0] == ""
    types = [(strings[t.type], strings[t.unit]) for t in message.sample_type]
    assert types == [("samples", "count"), ("cpu", "nanoseconds"), ("offcpu", "nanoseconds"),
                     ("wall", "nanoseconds"), ("calls", "count")]
    assert strings[message.default_sample_type] == "cpu"
    assert message.period == synthetic_profile.sample_period_ns
    assert (strings[message.period_type.type], strings[message.period_type.unit]) == ("cpu", "nanoseconds")
    assert message.duration_nanos == 1_000_000_000

    functions = {f.id: f for f in message.function}
    locations = {loc.id: loc for loc in message.location}
    assert len(functions) == len(locations) == len(synthetic_profile.frames)

    def frame_names(sample):
        return [strings[functions[locations[i].line[0].function_id].name] for i in sample.location_id]

    by_leaf = {}
    for sample in message.sample:
        labels = {strings[label.key]: (label.num, strings[label.str]) for label in sample.label}
        assert set(labels) == {"pid", "tid", "thread"}
        by_leaf.setdefault(frame_names(sample)[0], []).append((sample, labels))
    deflate, labels = by_leaf["deflate"][0]
    assert frame_names(deflate) == ["deflate", "zlib_compress", "hot", "main", "<module>"]  # leaf first
    assert list(deflate.value[:2]) == [400, 400 * synthetic_profile.sample_period_ns]
    assert labels["pid"][0] == 100 and labels["tid"][0] == 100 and labels["thread"][1] == "MainThread"
    assert sum(s.value[0] for s in message.sample) == 1000
    assert sum(s.value[2] for s in message.sample) == 250_000_000
    assert sum(s.value[3] for s in message.sample) == 800_000_000
    assert sum(s.value[4] for s in message.sample) == 10

    hot = next(f for f in functions.values() if strings[f.name] == "hot")
    assert (strings[hot.filename], hot.start_line, strings[hot.system_name]) == \
        ("/src/app.py", 20, "hot (/src/app.py:20)")
    hot_location = next(loc for loc in locations.values() if loc.line[0].function_id == hot.id)
    assert hot_location.line[0].line == 20


def test_one_metric(proto, synthetic_profile):
    message = decode(proto, render(synthetic_profile, metric="offcpu"))
    strings = message.string_table
    assert [strings[t.type] for t in message.sample_type] == ["offcpu"]
    assert len(message.sample) == 1 and message.period == 0


def test_deterministic(proto, synthetic_profile):
    assert render(synthetic_profile) == render(synthetic_profile)


def test_unknown_period_has_no_cpu_time(proto, synthetic_profile):
    synthetic_profile.sample_period_ns = 0
    message = decode(proto, render(synthetic_profile, metric="cpu"))
    strings = message.string_table
    assert [strings[t.type] for t in message.sample_type] == ["samples"]
    assert strings[message.default_sample_type] == "samples"


def test_missing_protobuf_says_what_to_install(monkeypatch, synthetic_profile):
    import etwtrace._report
    from etwtrace._report import pprof

    # Forget the loaded message module (as a module and as the package's attribute) so that
    # `write` imports it afresh, with protobuf made unimportable.
    monkeypatch.delitem(sys.modules, "etwtrace._report.pprof_proto", raising=False)
    monkeypatch.delattr(etwtrace._report, "pprof_proto", raising=False)
    monkeypatch.setitem(sys.modules, "google.protobuf", None)  # makes the import fail
    with pytest.raises(pprof.MissingDependency, match="pip install protobuf"):
        pprof.write(synthetic_profile, io.BytesIO(), ReportOptions())


def test_large_profile_is_linear(proto):
    p = Profile(source="big", start_ns=0, end_ns=10**9, sample_period_ns=1_000_000)
    frames = [p.frame(FrameKey(PYTHON if i % 2 else NATIVE, f"f{i}", f"/m{i % 7}", i)) for i in range(1000)]
    for i in range(100_000):
        stack = p.stack((frames[0], frames[1 + i % 999], frames[1 + (i // 999) % 999]))
        p.add("cpu", 1, 1 + i % 8, stack, 1 + i % 5)
    message = decode(proto, render(p))
    assert len(message.sample) == 100_000
    # Each frame is one location and one function, however many samples name it.
    assert len(message.location) == len(message.function) == 1000


# -- the real consumer ---------------------------------------------------------------------


def go_tool_pprof(tmp_path, *args):
    go = shutil.which("go")
    if go is None:
        need("apt-get install golang-go", "go tool pprof")
    home = tmp_path / "gohome"
    env = dict(os.environ, HOME=str(home), GOCACHE=str(home / "cache"), GOPATH=str(home / "path"),
               GOTOOLCHAIN="local", GOFLAGS="", PPROF_TMPDIR=str(home / "pprof"))
    result = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def top_rows(text):
    """{name: (flat%, cum%)} from `pprof -top` rows."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\s*\S+\s+([\d.]+)%\s+[\d.]+%\s+\S+\s+([\d.]+)%\s+(.+)$", line)
        if match:
            rows[match.group(3).strip()] = (float(match.group(1)), float(match.group(2)))
    return rows


@pytest.fixture
def pprof_file(proto, tmp_path, synthetic_profile):
    path = tmp_path / "synthetic.pb.gz"
    path.write_bytes(render(synthetic_profile))
    return str(path)


def test_go_tool_pprof_top(tmp_path, pprof_file):
    text = go_tool_pprof(tmp_path, "-top", pprof_file)
    print(text)
    assert "Type: cpu" in text
    rows = top_rows(text)
    # hot holds 70% of the CPU samples: 30% in itself, 40% in deflate under it
    assert rows["hot"] == (30.0, 70.0), rows
    assert rows["deflate"] == (40.0, 40.0)
    assert rows["<module>"] == (0.0, 100.0)


def test_go_tool_pprof_file_and_line(tmp_path, pprof_file):
    rows = top_rows(go_tool_pprof(tmp_path, "-top", "-lines", pprof_file))
    assert rows["hot /src/app.py:20"] == (30.0, 70.0), rows
    assert "cold /src/app.py:30" in rows
    traces = go_tool_pprof(tmp_path, "-traces", pprof_file)
    assert re.search(r"400\.40ms\s+deflate\s+zlib_compress\s+hot\s+main\s+<module>", traces), traces
    assert "thread:  worker" in traces


def test_go_tool_pprof_other_metrics(tmp_path, pprof_file):
    offcpu = top_rows(go_tool_pprof(tmp_path, "-top", "-sample_index=offcpu", pprof_file))
    assert offcpu["ksys_write"] == (100.0, 100.0), offcpu
    wall = top_rows(go_tool_pprof(tmp_path, "-top", "-sample_index=wall", pprof_file))
    assert wall["hot"] == (75.0, 75.0), wall
    calls = top_rows(go_tool_pprof(tmp_path, "-top", "-sample_index=calls", pprof_file))
    assert calls["hot"] == (70.0, 70.0), calls
    worker = top_rows(go_tool_pprof(tmp_path, "-top", "-tagfocus=thread=worker", pprof_file))
    assert set(worker) >= {"cold", "ksys_write"} and "hot" not in worker
