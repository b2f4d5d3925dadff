"""The ``html`` format: one self-contained page with a flame graph per metric and the summary.

Everything is inline (the script and style from ``assets/``, the data as JSON), so the page
works offline and can be mailed or attached as one file. The data is a frame table and, per
metric, the merged call tree as flat pre-order arrays (see flamegraph.py); the script draws
it on a canvas (assets/flamegraph.js). The summary tables and the health box are plain HTML,
readable without the script.
"""

import html
import json
from pathlib import Path

from . import flamegraph
from .profile import KINDS, METRICS

ASSETS = Path(__file__).resolve().parent / "assets"


def write(profile, out, options):
    title = options.title or profile.source or "etwtrace report"
    metrics = profile.metrics
    labels = flamegraph.frame_labels(profile)
    trees = [flamegraph.build_tree(profile, metric, labels) for metric in metrics]
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<title>{_text(title)} — etwtrace</title>\n",
        f"<style>\n{_asset('flamegraph.css')}</style>\n</head>\n<body>\n",
        f"<h1>{_text(title)}</h1>\n",
        f"<div class=\"meta\">{_text(_meta_line(profile))}</div>\n",
        _health_box(profile),
    ]
    if trees:
        parts += [_tabs(profile, trees), _toolbar(), _graph(), _summaries(profile, trees, labels, options.top)]
        parts += [
            "<script type=\"application/json\" id=\"flamegraph-data\">",
            _script_json(_data(profile, trees, labels)),
            "</script>\n<script>\n", _asset("flamegraph.js"), "</script>\n",
        ]
    else:
        parts.append("<p class=\"empty\">This capture holds no samples, switches or calls to draw.</p>\n")
    parts.append("</body>\n</html>\n")
    out.write("".join(parts).encode("utf-8", "replace"))  # a lone surrogate becomes "?"


def _text(value):
    return html.escape(str(value), quote=True)


def _asset(name):
    text = (ASSETS / name).read_text(encoding="utf-8")
    # Inlined as is, so it must not close its own element early.
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} cannot be inlined: it holds a closing tag")
    return text


def _script_json(value):
    """JSON safe inside <script>: no '<', '>' or '&' can end the element or start a comment."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _data(profile, trees, labels):
    kind_index = {kind: i for i, kind in enumerate(KINDS)}
    frames = [[label, kind_index.get(key.kind, kind_index["tag"]), flamegraph.frame_location(key),
               flamegraph.frame_color(key)] for key, label in zip(profile.frames, labels)]
    return {
        "frames": frames,
        "rootColor": flamegraph.ROOT_COLOR,
        "matchColor": flamegraph.MATCH_COLOR,
        "metrics": [{
            "name": tree.metric,
            "title": flamegraph.METRIC_TITLES.get(tree.metric, tree.metric),
            "unit": METRICS.get(tree.metric, ""),
            "samplePeriodNs": profile.sample_period_ns if tree.metric == "cpu" else 0,
            "tree": {"f": tree.frames, "v": tree.totals, "d": tree.depths},
        } for tree in trees],
    }


def _meta_line(profile):
    parts = []
    if profile.source:
        parts.append(profile.source)
    if profile.mode:
        parts.append(f"{profile.mode} mode")
    if profile.end_ns > profile.start_ns:
        parts.append(f"{flamegraph.format_duration(profile.end_ns - profile.start_ns)} recorded")
    if profile.processes:
        parts.append(f"{len(profile.processes)} process" + ("" if len(profile.processes) == 1 else "es"))
    if profile.threads:
        parts.append(f"{len(profile.threads)} thread" + ("" if len(profile.threads) == 1 else "s"))
    if profile.sample_period_ns:
        parts.append(f"one sample every {flamegraph.format_duration(profile.sample_period_ns)}")
    return " · ".join(parts)


# (Health field, wording): counts that mean something was lost or is partial.
_PROBLEMS = (
    ("lost_chunks", "lost chunks"),
    ("lost_events", "lost events"),
    ("truncated_traces", "truncated traces"),
    ("unresolved_frames", "unresolved frames"),
    ("short_stacks", "short stacks"),
    ("unmerged_samples", "samples without their Python stack"),
)


def _health_box(profile):
    health = profile.health
    facts = [_count(health.samples, "sample"), _count(health.context_switches, "context switch")]
    problems = [f"{getattr(health, field):,} {words}" for field, words in _PROBLEMS if getattr(health, field)]
    if health.incomplete_capture:
        problems.insert(0, "the capture did not finish")
    line = "Health: " + ", ".join(facts)
    if problems:
        line += "; " + ", ".join(f"<span class=\"problem\">{_text(p)}</span>" for p in problems)
    else:
        line += "; nothing lost"
    notes = "".join(f"<li>{_text(note)}</li>" for note in health.notes)
    warn = " warn" if problems or health.notes else ""
    return (f"<div class=\"health{warn}\" id=\"health\">{line}"
            + (f"<ul>{notes}</ul>" if notes else "") + "</div>\n")


def _count(number, noun):
    plural = noun + ("es" if noun.endswith(("s", "ch")) else "s")
    return f"{number:,} {noun if number == 1 else plural}"


def _cell(profile, metric, weight):
    """A table cell's weight: the unit is in the column's heading, so counts stand alone."""
    if not weight:
        return "–"
    if METRICS.get(metric) == "ns":
        return flamegraph.format_duration(weight)
    return f"{weight:,}"


def _tabs(profile, trees):
    buttons = []
    for i, tree in enumerate(trees):
        name = flamegraph.METRIC_TITLES.get(tree.metric, tree.metric)
        total = flamegraph.format_weight(profile, tree.metric, tree.total)
        buttons.append(f"<button class=\"metric-tab\" role=\"tab\" data-metric=\"{_text(tree.metric)}\" "
                       f"aria-selected=\"{'true' if i == 0 else 'false'}\">{_text(name)}"
                       f"<span class=\"total\">{_text(total)}</span></button>")
    return "<div class=\"tabs\" role=\"tablist\">" + "".join(buttons) + "</div>\n"


def _toolbar():
    legend = "".join(f"<span><span class=\"swatch\" style=\"background:{color}\"></span>{_text(title)}</span>"
                     for title, color in flamegraph.legend())
    return ("<div class=\"toolbar\">"
            "<input type=\"search\" id=\"flamegraph-search\" placeholder=\"Search functions (Ctrl+F)\" "
            "aria-label=\"Search functions\">"
            "<button id=\"flamegraph-reset\" disabled>Reset zoom</button>"
            "<span id=\"flamegraph-matched\"></span><span id=\"flamegraph-zoomed\"></span>"
            f"<span class=\"legend\">{legend}</span></div>\n")


def _graph():
    return ("<div class=\"graph\"><canvas id=\"flamegraph-canvas\"></canvas></div>\n"
            "<p class=\"hint\">Callers above callees, width by weight. Click a frame to zoom into it, "
            "click an ancestor row or press Esc to zoom out; a grey block gathers frames too narrow "
            "to draw.</p>\n<div id=\"flamegraph-tooltip\" hidden></div>\n")


def _summaries(profile, trees, labels, top):
    sections = []
    for i, tree in enumerate(trees):
        rows = flamegraph.python_function_table(profile, tree.metric)
        hidden = "" if i == 0 else " hidden"
        name = flamegraph.METRIC_TITLES.get(tree.metric, tree.metric)
        if not rows:
            body = "<p class=\"empty\">No Python function has weight in this metric.</p>"
        else:
            by_self = sorted(rows, key=lambda r: (-r[1], -r[2], labels[r[0]]))[:top]
            by_total = sorted(rows, key=lambda r: (-r[2], -r[1], labels[r[0]]))[:top]
            body = ("<div class=\"tables\">"
                    f"<div><h3>Top Python functions by self</h3>{_table(profile, tree, by_self)}</div>"
                    f"<div><h3>Top Python functions by total</h3>{_table(profile, tree, by_total)}</div>"
                    "</div>")
        sections.append(f"<section class=\"summary-section\" data-metric=\"{_text(tree.metric)}\"{hidden}>"
                        f"<h2>Summary: {_text(name)}</h2>{body}</section>\n")
    return "".join(sections)


def _table(profile, tree, rows):
    with_calls = bool(profile.functions)
    unit = {"samples": " (samples)", "calls": " (calls)"}.get(METRICS.get(tree.metric), "")
    head = (f"<tr><th>Function</th><th class=\"number\">Self{unit}</th><th class=\"number\">%</th>"
            f"<th class=\"number\">Total{unit}</th><th class=\"number\">%</th>"
            + ("<th class=\"number\">Calls</th>" if with_calls else "") + "</tr>")
    lines = [head]
    for frame, self_weight, total_weight in rows:
        key = profile.frames[frame]
        calls = profile.functions.get(frame)
        lines.append(
            f"<tr data-search=\"{_text(key.label)}\" title=\"Search the flame graph for this function\">"
            f"<td class=\"function\">{_text(key.name)}<br><span class=\"where\">"
            f"{_text(flamegraph.frame_location(key))}</span></td>"
            f"<td class=\"number\">{_text(_cell(profile, tree.metric, self_weight))}</td>"
            f"<td class=\"number\">{flamegraph.percent(self_weight, tree.total) if self_weight else '–'}</td>"
            f"<td class=\"number\">{_text(_cell(profile, tree.metric, total_weight))}</td>"
            f"<td class=\"number\">{flamegraph.percent(total_weight, tree.total)}</td>"
            + (f"<td class=\"number\">{calls.calls:,}</td>" if calls else
               "<td class=\"number\"></td>" if with_calls else "")
            + "</tr>")
    return "<table>" + "".join(lines) + "</table>"
