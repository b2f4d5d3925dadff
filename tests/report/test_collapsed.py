"""Folded stacks: one line per stack, root first, parsed back to the profile's weights."""

import io

from etwtrace._report import collapsed
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import PYTHON, FrameKey, Profile


def parse_folded(text):
    stacks = {}
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        stacks[tuple(frames.split(";"))] = stacks.get(tuple(frames.split(";")), 0) + int(count)
    return stacks


def render(profile, **options):
    out = io.BytesIO()
    collapsed.write(profile, out, ReportOptions(**options))
    return out.getvalue().decode("utf-8")


def test_every_stack_once_root_first_with_its_weight(synthetic_profile):
    stacks = parse_folded(render(synthetic_profile))
    assert sum(stacks.values()) == synthetic_profile.total("cpu") == 1000
    assert stacks[("<module> (/src/app.py:1)", "main (/src/app.py:10)", "hot (/src/app.py:20)",
                   "zlib_compress [zlib.so]", "deflate [libz.so.1]")] == 400


def test_the_metric_option_chooses_the_weights(synthetic_profile):
    stacks = parse_folded(render(synthetic_profile, metric="offcpu"))
    assert list(stacks.values()) == [250_000_000]
    assert next(iter(stacks))[-1] == "ksys_write [kernel.kallsyms]"


def test_separators_inside_labels_do_not_split_frames():
    p = Profile()
    odd = p.frame(FrameKey(PYTHON, "f;g\nh", "/a;b.py", 3))
    p.add("cpu", 1, 1, p.stack((odd,)), 5)
    text = render(p)
    assert text.count("\n") == 1 and ";" not in text
    assert parse_folded(text) == {("f:g h (/a:b.py:3)",): 5}
