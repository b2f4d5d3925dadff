"""The svg format: a well-formed standalone flame graph, and its script in a real browser."""

import io
import json
import xml.etree.ElementTree as ET

import pytest

from browser import Browser, keep_screenshot, png_size_and_colors, require_browser
from etwtrace._report import svg
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import PYTHON, FrameKey, Profile
from test_html import HOSTILE_NAMES, demo_profile, hostile_profile

SVG = "{http://www.w3.org/2000/svg}"


def render(profile, **options):
    out = io.BytesIO()
    svg.write(profile, out, ReportOptions(**options))
    return out.getvalue()


def frames_of(document):
    """[(label, tooltip, rect attributes)] of each frame group, in document order."""
    root = ET.fromstring(document)
    out = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "frame":
            continue
        tip = group.find(f"{SVG}title").text
        out.append((tip.split("\n")[0], tip, group.find(f"{SVG}rect").attrib, group.attrib))
    return out


def test_svg_is_well_formed_with_one_group_per_frame(synthetic_profile):
    document = render(synthetic_profile)
    frames = frames_of(document)
    labels = [label for label, _, _, _ in frames]
    assert labels == ["all", "<module> (/src/app.py:1)", "main (/src/app.py:10)", "hot (/src/app.py:20)",
                      "zlib_compress [zlib.so]", "deflate [libz.so.1]", "cold (/src/app.py:30)",
                      "ksys_write [kernel.kallsyms]"]
    tips = {label: tip for label, tip, _, _ in frames}
    assert tips["hot (/src/app.py:20)"].split("\n") == [
        "hot (/src/app.py:20)", "Python", "/src/app.py:20",
        "700 samples (701 ms), 70.00% of total, 70.00% of parent", "self: 300 samples (300 ms)"]
    assert "native module zlib.so" in tips["zlib_compress [zlib.so]"]
    rects = {label: rect for label, _, rect, _ in frames}
    assert float(rects["hot (/src/app.py:20)"]["width"]) == pytest.approx(0.7 * 1180, abs=1)
    assert float(rects["cold (/src/app.py:30)"]["x"]) == pytest.approx(10 + 0.7 * 1180, abs=0.1)
    assert b"<![CDATA[" in document and b"http://www.w3.org/2000/svg" in document
    assert b"href=" not in document  # nothing to load


def test_metric_option_picks_the_graph(synthetic_profile):
    frames = frames_of(render(synthetic_profile, metric="offcpu"))
    assert [label for label, _, _, _ in frames][-1] == "ksys_write [kernel.kallsyms]"
    assert "250 ms, 100.00% of total" in frames[0][1]
    assert b"Off-CPU time" in render(synthetic_profile, metric="offcpu")
    with pytest.raises(ValueError, match="unknown metric"):
        render(synthetic_profile, metric="wall")


def test_narrow_frames_are_not_drawn_but_keep_their_weight():
    p = Profile(source="/tmp/narrow.etwtrace")
    main = p.frame(FrameKey(PYTHON, "main", "/a.py", 1))
    wide = p.frame(FrameKey(PYTHON, "wide", "/a.py", 5))
    narrow = p.frame(FrameKey(PYTHON, "narrow", "/a.py", 9))
    p.add("cpu", 1, 1, p.stack((main, wide)), 1_000_000)
    p.add("cpu", 1, 1, p.stack((main, narrow)), 1)
    labels = [label for label, _, _, _ in frames_of(render(p))]
    assert labels == ["all", "main (/a.py:1)", "wide (/a.py:5)"]
    assert "1,000,001 samples" in frames_of(render(p))[0][1]


def test_hostile_names_are_escaped():
    document = render(hostile_profile(), title="</title><b>t</b>")
    labels = [label for label, _, _, _ in frames_of(document)]
    for i, name in enumerate(HOSTILE_NAMES):
        assert f"{name} (/src/x&y.py:{5 + i})" in labels
    assert b"<script>window" not in document and b"<b>" not in document


def test_control_characters_become_replacement_characters():
    p = Profile()
    p.add("cpu", 1, 1, p.stack((p.frame(FrameKey(PYTHON, "bad\x00\x07name\udc80", "/a.py", 1)),)), 5)
    labels = [label for label, _, _, _ in frames_of(render(p))]
    assert labels[1] == "bad\ufffd\ufffdname\ufffd (/a.py:1)"


def test_empty_profile_is_still_an_svg():
    document = render(Profile(source="/tmp/empty.etwtrace"))
    ET.fromstring(document)
    assert b"No cpu samples in this capture." in document


# -- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    require_browser()
    instance = Browser()
    yield instance
    instance.close()


def center_of(browser, selector_js):
    return browser.evaluate(f"""(() => {{ const box = ({selector_js}).getBoundingClientRect();
        return [box.left + box.width / 2, box.top + box.height / 2]; }})()""")


def frame_js(label):
    return (f"Array.from(document.querySelectorAll('g.frame')).find((g) => "
            f"g.querySelector('title').textContent.split('\\n')[0] === {json.dumps(label)})")


def test_svg_zooms_searches_and_resets(browser, tmp_path, synthetic_profile):
    path = tmp_path / "cpu.svg"
    path.write_bytes(render(synthetic_profile))
    browser.open(path)
    assert browser.evaluate("document.querySelectorAll('g.frame').length") == 8
    assert "hot (/src/app.py:20)" in browser.evaluate(
        "Array.from(document.querySelectorAll('g.frame text')).map((t) => t.textContent)")
    assert png_size_and_colors(browser.screenshot(scale=0.25))[2] > 20

    browser.click(*center_of(browser, frame_js("hot (/src/app.py:20)") + ".querySelector('rect')"))
    assert browser.evaluate("window.flamegraph.zoomed()") == 3
    width = browser.evaluate(frame_js("hot (/src/app.py:20)") + ".querySelector('rect').getAttribute('width')")
    assert float(width) == pytest.approx(1180, abs=1)
    assert browser.evaluate(frame_js("cold (/src/app.py:30)") + ".style.display") == "none"
    assert browser.evaluate(frame_js("main (/src/app.py:10)") + ".classList.contains('ancestor')")

    browser.prompt_answers.append("deflate")
    browser.click(*center_of(browser, "document.getElementById('search')"))
    matched = browser.evaluate("Array.from(document.querySelectorAll('g.matched'))"
                               ".map((g) => g.querySelector('title').textContent.split('\\n')[0])")
    assert matched == ["deflate [libz.so.1]"]
    assert browser.evaluate("document.getElementById('matched').textContent") == "Matched: 40.00%"

    browser.click(*center_of(browser, "document.getElementById('reset')"))
    assert browser.evaluate("window.flamegraph.zoomed()") == 0
    assert browser.evaluate("Array.from(document.querySelectorAll('g.frame')).every((g) => g.style.display === '')")
    assert browser.errors == []


def test_svg_screenshot(browser, tmp_path):
    path = tmp_path / "service.svg"
    path.write_bytes(render(demo_profile()))
    browser.open(path)
    png = browser.screenshot()
    assert png_size_and_colors(browser.screenshot(scale=0.25))[2] > 50
    keep_screenshot(png, "report-svg.png")
    assert browser.errors == []
