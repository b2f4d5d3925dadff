"""The html format: the page's structure and data, and the page in a real browser."""

import io
import json
import random
import re

import pytest

from browser import Browser, keep_screenshot, png_size_and_colors, require_browser
from etwtrace._report import flamegraph, html
from etwtrace._report.formats import ReportOptions
from etwtrace._report.profile import KERNEL, NATIVE, PYTHON, TAG, FrameKey, Health, Profile

HOSTILE_NAMES = [
    "</script><script>window.pwned=1</script>",
    "a & b \"quoted\" 'single' <b>bold</b>",
    "<!-- comment --> ]]> \u2028 line \u2029 separator",
    "lambda <lambda> (é ü 日本)",
]


def render(profile, **options):
    out = io.BytesIO()
    html.write(profile, out, ReportOptions(**options))
    return out.getvalue().decode("utf-8")


def page_data(page):
    match = re.search(r'<script type="application/json" id="flamegraph-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def hostile_profile():
    p = Profile(source="/tmp/<hostile> & \"quoted\".etwtrace", mode="stack")
    module = p.frame(FrameKey(PYTHON, "<module>", "/src/</script>.py", 1))
    names = [p.frame(FrameKey(PYTHON, name, "/src/x&y.py", 5 + i)) for i, name in enumerate(HOSTILE_NAMES)]
    native = p.frame(FrameKey(NATIVE, "op<int>&", "/lib/lib<x>.so"))
    for i, frame in enumerate(names):
        p.add("cpu", 1, 1, p.stack((module, frame, native)), 10 + i)
    p.health = Health(samples=46, notes=["a note with <tags> & </script>"])
    return p


def demo_profile(seed=7):
    """A plausible web service's profile: the README's screenshot, and a busier page to drive."""
    rng = random.Random(seed)
    p = Profile(source="/tmp/service.etwtrace", mode="stack", start_ns=0, end_ns=12_000_000_000,
                sample_period_ns=1_000_000)
    p.threads[(10, 10)] = "MainThread"
    p.processes[10] = "python service.py"

    def py(name, file, line):
        return p.frame(FrameKey(PYTHON, name, file, line))

    module = py("<module>", "/srv/service.py", 1)
    serve = py("serve_forever", "/usr/lib/python3.12/socketserver.py", 215)
    handle = py("Handler.handle_request", "/srv/service.py", 40)
    parse = py("parse_body", "/srv/service.py", 88)
    loads = py("loads", "/usr/lib/python3.12/json/__init__.py", 299)
    decode = py("JSONDecoder.raw_decode", "/usr/lib/python3.12/json/decoder.py", 343)
    query = py("Store.query", "/srv/store.py", 120)
    execute = py("Cursor.execute", "/srv/db.py", 61)
    render_page = py("render_template", "/srv/templates.py", 17)
    escape = py("escape_html", "/srv/templates.py", 52)
    compress = py("compress_response", "/srv/service.py", 130)
    gc_tag = p.frame(FrameKey(TAG, "GC"))
    scan = p.frame(FrameKey(NATIVE, "json_scanstring", "/usr/lib/python3.12/lib-dynload/_json.so"))
    sqlite = p.frame(FrameKey(NATIVE, "sqlite3_step", "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0"))
    deflate = p.frame(FrameKey(NATIVE, "deflate", "/usr/lib/x86_64-linux-gnu/libz.so.1"))
    memcpy = p.frame(FrameKey(NATIVE, "__memmove_avx_unaligned_erms", "/usr/lib/x86_64-linux-gnu/libc.so.6"))
    read = p.frame(FrameKey(KERNEL, "ksys_read", "[kernel.kallsyms]"))
    copy = p.frame(FrameKey(KERNEL, "copy_user_enhanced_fast_string", "[kernel.kallsyms]"))
    base = (module, serve, handle)
    shapes = [
        (base + (parse, loads, decode, scan), 1800), (base + (parse, loads, decode), 500),
        (base + (query, execute, sqlite), 2600), (base + (query, execute, sqlite, read, copy), 900),
        (base + (query,), 300), (base + (render_page, escape), 1400), (base + (render_page,), 600),
        (base + (render_page, gc_tag), 250), (base + (compress, deflate), 1100),
        (base + (compress, deflate, memcpy), 300), (base, 200), ((module, serve, read), 350),
    ]
    for frames, weight in shapes:
        p.add("cpu", 10, 10, p.stack(frames), weight + rng.randrange(50))
    p.add("offcpu", 10, 10, p.stack(base + (query, execute, sqlite, read)), 2_400_000_000)
    p.add("offcpu", 10, 10, p.stack((module, serve, read)), 6_100_000_000)
    p.health = Health(samples=10_500, context_switches=420, short_stacks=12, unresolved_frames=3)
    return p


def wide_profile(nodes):
    """About `nodes` distinct tree nodes: 250 functions each calling chains of helpers."""
    p = Profile(source="/tmp/wide.etwtrace", mode="stack")
    root = p.frame(FrameKey(PYTHON, "<module>", "/src/big.py", 1))
    made = 1
    i = 0
    while made < nodes:
        chain = [root]
        for depth in range(1 + i % 8):
            chain.append(p.frame(FrameKey(PYTHON, f"function_{i}_{depth}", "/src/big.py", 10 + depth)))
        p.add("cpu", 1, 1, p.stack(chain), 1 + (i * 7919) % 97)
        made += len(chain) - 1
        i += 1
    return p


# -- the page's structure --------------------------------------------------------------------


def test_page_is_self_contained(synthetic_profile):
    page = render(synthetic_profile)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("<script") == 2  # the data and the inlined script


def test_data_holds_every_metric_and_the_merged_tree(synthetic_profile):
    data = page_data(render(synthetic_profile))
    assert [m["name"] for m in data["metrics"]] == ["cpu", "offcpu", "instrumented", "calls"]
    labels = [frame[0] for frame in data["frames"]]
    cpu = data["metrics"][0]
    assert cpu["unit"] == "samples" and cpu["samplePeriodNs"] == 1_001_001
    tree = cpu["tree"]
    shape = [(labels[f] if f >= 0 else "all", v, d) for f, v, d in zip(tree["f"], tree["v"], tree["d"])]
    assert shape == [
        ("all", 1000, 0), ("<module> (/src/app.py:1)", 1000, 1), ("main (/src/app.py:10)", 1000, 2),
        ("hot (/src/app.py:20)", 700, 3), ("zlib_compress [zlib.so]", 400, 4), ("deflate [libz.so.1]", 400, 5),
        ("cold (/src/app.py:30)", 300, 3), ("ksys_write [kernel.kallsyms]", 100, 4),
    ]
    offcpu = data["metrics"][1]["tree"]
    assert offcpu["v"][0] == 250_000_000


def test_colours_tell_kinds_apart(synthetic_profile):
    colours = {key.kind: flamegraph.frame_color(key) for key in synthetic_profile.frames}
    red, green, blue = (int(colours[KERNEL][i:i + 2], 16) for i in (1, 3, 5))
    assert red > green and red > blue
    red, green, blue = (int(colours[NATIVE][i:i + 2], 16) for i in (1, 3, 5))
    assert red > green > blue
    red, green, blue = (int(colours[PYTHON][i:i + 2], 16) for i in (1, 3, 5))
    assert green > red
    assert flamegraph.frame_color(FrameKey(TAG, "GC"))[1:3] == flamegraph.frame_color(FrameKey(TAG, "GC"))[3:5]
    # A function's colour depends on its name alone (crc32, not the salted hash()): stable across runs.
    assert flamegraph.frame_color(FrameKey(PYTHON, "x")) == flamegraph.frame_color(FrameKey(PYTHON, "x", "/y", 3))
    assert flamegraph.frame_color(FrameKey(PYTHON, "main")) == "#8cd4b6"


def test_summary_tables_rank_python_functions(synthetic_profile):
    page = render(synthetic_profile)
    section = re.search(r'<section class="summary-section" data-metric="cpu">(.*?)</section>', page, re.S).group(1)
    by_self, by_total = re.findall(r"<table>(.*?)</table>", section, re.S)
    first_self = re.findall(r'<tr data-search="([^"]*)"', by_self)
    assert first_self[:2] == ["hot (/src/app.py:20)", "cold (/src/app.py:30)"]
    assert "700" in by_self.split("</tr>")[1] and "70.00%" in by_self.split("</tr>")[1]
    assert re.findall(r'<tr data-search="([^"]*)"', by_total)[0] == "&lt;module&gt; (/src/app.py:1)"
    assert "zlib" not in section  # native frames are not Python functions
    assert 'data-metric="offcpu" hidden' in page


def test_health_problems_are_prominent(synthetic_profile):
    assert "nothing lost" in render(synthetic_profile)
    synthetic_profile.health = Health(samples=10, lost_chunks=3, short_stacks=5, incomplete_capture=True,
                                      notes=["perf was stopped early"])
    page = render(synthetic_profile)
    health = re.search(r'<div class="health warn" id="health">(.*?)</div>', page, re.S).group(1)
    problems = re.findall(r'<span class="problem">(.*?)</span>', health)
    assert problems == ["the capture did not finish", "3 lost chunks", "5 short stacks"]
    assert "<li>perf was stopped early</li>" in health


def test_hostile_names_are_escaped():
    page = render(hostile_profile(), title="</title><b>t</b>")
    assert page.count("</script>") == 2
    assert "<script>window.pwned" not in page and "<b>bold</b>" not in page and "<b>t</b>" not in page
    labels = [frame[0] for frame in page_data(page)["frames"]]
    assert all(f"{name} (/src/x&y.py:{5 + i})" in labels for i, name in enumerate(HOSTILE_NAMES))


def test_empty_profile_says_so():
    page = render(Profile(source="/tmp/empty.etwtrace"))
    assert "no samples, switches or calls" in page
    assert "flamegraph-data" not in page


def test_large_tree_stays_compact():
    profile = wide_profile(50_000)
    tree = flamegraph.build_tree(profile, "cpu")
    assert len(tree) >= 50_000 and tree.total == profile.total("cpu")
    page = render(profile)
    assert len(page) < 120 * len(tree)  # bytes per node, frame table and summary included


# -- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    require_browser()
    instance = Browser()
    yield instance
    instance.close()


def open_page(browser, tmp_path, profile, name="report.html"):
    path = tmp_path / name
    path.write_text(render(profile), encoding="utf-8")
    browser.open(path)
    return path


def frame_center(browser, label):
    """Viewport coordinates of the middle of a drawn frame."""
    return browser.evaluate(f"""(() => {{
        const box = document.getElementById("flamegraph-canvas").getBoundingClientRect();
        const item = window.flamegraph.drawn().find((d) => d.label === {json.dumps(label)});
        return [box.left + item.x + item.width / 2, box.top + item.y + item.height / 2];
    }})()""")


def test_page_draws_zooms_and_searches(browser, tmp_path, synthetic_profile):
    open_page(browser, tmp_path, synthetic_profile)
    drawn = browser.evaluate("window.flamegraph.drawn()")
    assert len(drawn) == 8
    assert "hot (/src/app.py:20)" in [d["label"] for d in drawn]
    width, height, colors = png_size_and_colors(browser.screenshot(scale=0.25))
    assert (width, height) == (320, 225) and colors > 50

    x, y = frame_center(browser, "hot (/src/app.py:20)")
    browser.move(x, y)
    tip = browser.evaluate("document.getElementById('flamegraph-tooltip').innerText")
    assert "hot (/src/app.py:20)" in tip and "70.00% of total" in tip and "70.00% of parent" in tip
    assert browser.evaluate("!document.getElementById('flamegraph-tooltip').hidden")

    browser.click(x, y)
    canvas_width = browser.evaluate("document.getElementById('flamegraph-canvas').clientWidth")
    drawn = {d["label"]: d for d in browser.evaluate("window.flamegraph.drawn()")}
    assert browser.evaluate("window.flamegraph.zoomed()") == 3
    assert drawn["hot (/src/app.py:20)"]["width"] == pytest.approx(canvas_width)
    assert drawn["main (/src/app.py:10)"]["ancestor"] and "cold (/src/app.py:30)" not in drawn
    assert drawn["deflate [libz.so.1]"]["width"] == pytest.approx(canvas_width * 4 / 7)

    browser.press_key("f", "KeyF", 70, modifiers=2)  # Ctrl+F focuses the search box
    assert browser.evaluate("document.activeElement.id") == "flamegraph-search"
    browser.type_text("DEFLATE")
    matched = [d["label"] for d in browser.evaluate("window.flamegraph.drawn()") if d["matched"]]
    assert matched == ["deflate [libz.so.1]"]
    assert float(browser.evaluate("document.getElementById('flamegraph-matched').dataset.share")) == pytest.approx(0.4)

    reset = browser.evaluate("(() => { const b = document.getElementById('flamegraph-reset').getBoundingClientRect();"
                             " return [b.left + b.width / 2, b.top + b.height / 2]; })()")
    browser.click(*reset)
    assert browser.evaluate("window.flamegraph.zoomed()") == 0
    assert len(browser.evaluate("window.flamegraph.drawn()")) == 8
    assert browser.errors == []


def test_metric_tabs_switch_graph_and_summary(browser, tmp_path, synthetic_profile):
    open_page(browser, tmp_path, synthetic_profile)
    tab = browser.evaluate("""(() => { const b = document.querySelector('.metric-tab[data-metric="offcpu"]')
        .getBoundingClientRect(); return [b.left + b.width / 2, b.top + b.height / 2]; })()""")
    browser.click(*tab)
    assert browser.evaluate("window.flamegraph.metric()") == "offcpu"
    labels = [d["label"] for d in browser.evaluate("window.flamegraph.drawn()")]
    assert labels[-1] == "ksys_write [kernel.kallsyms]" and "hot (/src/app.py:20)" not in labels
    assert browser.evaluate("document.querySelector('.summary-section[data-metric=\"offcpu\"]').hidden") is False
    assert browser.evaluate("document.querySelector('.summary-section[data-metric=\"cpu\"]').hidden") is True
    assert browser.errors == []


def test_hostile_names_round_trip(browser, tmp_path):
    open_page(browser, tmp_path, hostile_profile())
    labels = browser.evaluate("window.flamegraph.drawn().map((d) => d.label)")
    for i, name in enumerate(HOSTILE_NAMES):
        assert f"{name} (/src/x&y.py:{5 + i})" in labels
    assert browser.evaluate("window.pwned === undefined")
    assert browser.evaluate("document.title").startswith("/tmp/<hostile>")
    assert browser.errors == []


def test_large_tree_draws_a_bounded_number_of_frames(browser, tmp_path):
    # Frames too narrow to see are not drawn, so a search and redraw over 50,000 nodes stays
    # interactive; benchmarks/bench_report.py has no browser, so the bound is what is checked.
    open_page(browser, tmp_path, wide_profile(50_000))
    assert browser.evaluate("window.flamegraph.nodeCount()") >= 50_000
    browser.evaluate("""(() => { for (let i = 0; i < 5; i++)
        window.flamegraph.search(i % 2 ? "function_1" : ""); })()""")
    drawn = browser.evaluate("window.flamegraph.drawn().length")
    assert drawn < 10_000
    assert browser.errors == []


def test_screenshot_of_a_realistic_page(browser, tmp_path):
    open_page(browser, tmp_path, demo_profile(), name="service.html")
    x, y = frame_center(browser, "Cursor.execute (/srv/db.py:61)")
    browser.move(x, y)
    png = browser.screenshot()
    assert png_size_and_colors(browser.screenshot(scale=0.25))[2] > 100
    keep_screenshot(png, "report-html.png")
    assert browser.errors == []
