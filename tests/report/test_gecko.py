"""Gecko profile writer: a structural check against the format's type definition
(firefox-devtools/profiler src/types/gecko-profile.ts, version 31 shape). No real consumer of
the format runs here (the profiler is a web app), so this checks what the importer relies on:
schemas match the rows, every index resolves, and location strings take the shapes the
importer's patterns classify (copied from src/profile-logic/process-profile.ts)."""

import io
import json
import re

from etwtrace._report import gecko
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import PYTHON, FrameKey, Profile, Sample

# The importer's patterns: "name (in library)" is a native function, "name (url:line[:col])"
# a script function with its file and line.
NATIVE_LOCATION = re.compile(r"^(.*) \(in ([^)]*)\)$")
SCRIPT_LOCATION = re.compile(r"^(.*) \((.+?):([0-9]+)(?::([0-9]+))?\)(?:\[(\d+)\])?$")


def render(profile, **options):
    out = io.BytesIO()
    gecko.write(profile, out, ReportOptions(**options))
    return json.loads(out.getvalue().decode())


def check_thread(thread, categories):
    strings = thread["stringTable"]
    for table, width in (("frameTable", 8), ("stackTable", 2), ("samples", 3), ("markers", 6)):
        schema = thread[table]["schema"]
        assert sorted(schema.values()) == list(range(width)), table
        assert all(len(row) == width for row in thread[table]["data"]), table
    frames = thread["frameTable"]["data"]
    for location, _js, _window, _impl, line, _col, category, subcategory in frames:
        assert 0 <= location < len(strings)
        assert 0 <= category < len(categories) and subcategory == 0
    stacks = thread["stackTable"]["data"]
    for index, (prefix, frame) in enumerate(stacks):
        assert prefix is None or 0 <= prefix < index  # a prefix comes before its stacks
        assert 0 <= frame < len(frames)
    last = float("-inf")
    for stack, at, _delay in thread["samples"]["data"]:
        assert stack is None or 0 <= stack < len(stacks)
        assert at >= last
        last = at
    for name, start, end, phase, category, _data in thread["markers"]["data"]:
        assert 0 <= name < len(strings) and 0 <= category < len(categories)
        assert (phase, end is None) in ((0, True), (1, False)) and (end is None or end >= start)


def stack_locations(thread, stack):
    strings, frames, stacks = thread["stringTable"], thread["frameTable"]["data"], thread["stackTable"]["data"]
    out = []
    while stack is not None:
        prefix, frame = stacks[stack]
        out.append(strings[frames[frame][0]])
        stack = prefix
    return out[::-1]


def test_structure(synthetic_profile):
    document = render(synthetic_profile, title="run")
    meta = document["meta"]
    assert meta["version"] == gecko.GECKO_VERSION and meta["product"] == "run"
    assert meta["interval"] == synthetic_profile.sample_period_ns / 1e6
    for key in ("startTime", "shutdownTime", "categories", "markerSchema", "stackwalk", "debug",
                "gcpoison", "asyncstack", "processType"):
        assert key in meta
    for key in ("libs", "pausedRanges", "processes"):
        assert document[key] == []
    threads = document["threads"]
    assert [(t["pid"], t["tid"], t["name"]) for t in threads] == [(100, 100, "MainThread"), (100, 101, "worker")]
    assert all(t["processName"] == "python app.py" for t in threads)
    for thread in threads:
        check_thread(thread, meta["categories"])


def test_locations_match_the_importers_patterns(synthetic_profile):
    thread = render(synthetic_profile)["threads"][0]
    locations = [thread["stringTable"][f[0]] for f in thread["frameTable"]["data"]]
    hot = next(loc for loc in locations if loc.startswith("hot "))
    assert SCRIPT_LOCATION.match(hot).groups()[:3] == ("hot", "/src/app.py", "20")
    deflate = next(loc for loc in locations if loc.startswith("deflate"))
    assert NATIVE_LOCATION.match(deflate).groups() == ("deflate", "libz.so.1")


def test_samples_and_markers(synthetic_profile):
    document = render(synthetic_profile)
    main, worker = document["threads"]
    cpu = [s for s in synthetic_profile.samples if s.metric == "cpu"]
    main_samples = sorted((s for s in cpu if s.tid == 100), key=lambda s: s.time_ns)
    assert len(main["samples"]["data"]) == len(main_samples)
    for row, sample in zip(main["samples"]["data"], main_samples):
        assert row[1] == (sample.time_ns - synthetic_profile.start_ns) / 1e6
        expected = [gecko.location(f) for f in synthetic_profile.frames_of(sample.stack)]
        assert stack_locations(main, row[0]) == expected
    names = {main["stringTable"][m[0]]: m for m in main["markers"]["data"]}
    assert names["start"][3] == gecko.INSTANT
    assert names["phase one"][1:4] == [0.01, 500.0, gecko.INTERVAL]
    assert names["hot (/src/app.py:20)"][1:4] == [0.002, 600.0, gecko.INTERVAL]
    offcpu = [m for m in worker["markers"]["data"] if worker["stringTable"][m[0]] == "Off-CPU"]
    assert [m[1:4] for m in offcpu] == [[700.0, 950.0, gecko.INTERVAL]]


def test_large_profile_is_linear():
    p = Profile(source="big", start_ns=0, end_ns=10**9)
    frames = [p.frame(FrameKey(PYTHON, f"f{i}", "/big.py", i + 1)) for i in range(1000)]
    stacks = [p.stack((frames[0], frames[1 + i % 999], frames[1 + (i // 999) % 999])) for i in range(100_000)]
    p.samples += [Sample(1, 1 + i % 4, i * 1000, stacks[i], "cpu", 1) for i in range(100_000)]
    document = gecko.build(p, ReportOptions())
    assert sum(len(t["samples"]["data"]) for t in document["threads"]) == 100_000
    # Stack prefixes are interned: the table grows with distinct stacks, never per sample.
    for thread in document["threads"]:
        rows = [tuple(row) for row in thread["stackTable"]["data"]]
        assert len(rows) == len(set(rows)) <= 1 + 999 + len(set(stacks))
