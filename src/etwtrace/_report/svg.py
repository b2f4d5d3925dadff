"""The ``svg`` format: one metric's flame graph as a standalone interactive SVG.

Like flamegraph.pl's: every frame is a rect with its label and a <title> tooltip, laid out
here at full width, so the file is a picture even where scripts do not run (an image viewer,
an <img> tag); opened in a browser, the embedded script (assets/flamegraph-svg.js) adds
click-to-zoom, search (the "Search" button or Ctrl+F) and reset. Frames narrower than
MIN_WIDTH pixels are not drawn, as with flamegraph.pl's --minwidth; their weight stays in their
parents' totals. The tree, colours and wording are flamegraph.py's, shared with the HTML page.
"""

import html
import json
import re
from pathlib import Path

from . import flamegraph

ASSETS = Path(__file__).resolve().parent / "assets"

WIDTH = 1200
SIDE = 10  # margin left and right of the frames
TOP = 36  # room for the title and the controls
BOTTOM = 28  # room for the details line
ROW_HEIGHT = 16
FONT_SIZE = 12
FONT_WIDTH = 0.59  # a Verdana character's mean width, in font sizes: label fitting estimates
MIN_WIDTH = 0.1  # px

# Characters XML 1.0 forbids even as references; a symbol name may still hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def write(profile, out, options):
    metrics = profile.metrics
    metric = options.metric or (metrics[0] if metrics else "cpu")
    if metric not in flamegraph.METRIC_TITLES:
        raise ValueError(f"unknown metric {metric!r}: one of {', '.join(flamegraph.METRIC_TITLES)}")
    tree = flamegraph.build_tree(profile, metric)
    title = f"{options.title or profile.source or 'etwtrace'} — {flamegraph.METRIC_TITLES[metric]}"
    frames_svg, max_depth = _frames(profile, tree)
    height = TOP + (max_depth + 1) * ROW_HEIGHT + BOTTOM
    config = {"width": WIDTH - 2 * SIDE, "left": SIDE, "fontSize": FONT_SIZE, "fontWidth": FONT_WIDTH,
              "matchColor": flamegraph.MATCH_COLOR}
    script = (ASSETS / "flamegraph-svg.js").read_text(encoding="utf-8")
    if "]]>" in script:
        raise ValueError("flamegraph-svg.js cannot sit in CDATA: it holds ']]>'")
    empty = "" if tree.total else (
        f"<text x=\"{WIDTH / 2}\" y=\"{TOP + 12}\" text-anchor=\"middle\">"
        f"No {_text(flamegraph.METRIC_TITLES[metric].lower())} in this capture.</text>\n")
    document = (
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"no\"?>\n"
        f"<svg version=\"1.1\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" "
        "xmlns=\"http://www.w3.org/2000/svg\">\n"
        f"<title>{_text(title)}</title>\n"
        "<style>\n"
        f"text {{ font-family: Verdana, 'DejaVu Sans', sans-serif; font-size: {FONT_SIZE}px; fill: #111; }}\n"
        "g.frame { cursor: pointer; }\n"
        "g.frame:hover rect { stroke: #222; stroke-width: 0.8; }\n"
        "g.frame text { pointer-events: none; }\n"
        "g.ancestor rect { opacity: 0.55; }\n"
        ".control { cursor: pointer; fill: #2f6fd6; }\n"
        "#matched { fill: #a020a0; font-weight: bold; }\n"
        "#details { fill: #333; }\n"
        "</style>\n"
        f"<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#fbfbfc\"/>\n"
        f"<text id=\"heading\" x=\"{WIDTH / 2}\" y=\"22\" text-anchor=\"middle\" "
        f"style=\"font-size:15px;font-weight:bold\">{_text(title)}</text>\n"
        f"<text id=\"reset\" class=\"control\" x=\"{SIDE}\" y=\"22\" style=\"display:none\">Reset zoom</text>\n"
        f"<text id=\"search\" class=\"control\" x=\"{WIDTH - SIDE}\" y=\"22\" text-anchor=\"end\">Search</text>\n"
        f"<text id=\"details\" x=\"{SIDE}\" y=\"{height - 10}\"> </text>\n"
        f"<text id=\"matched\" x=\"{WIDTH - SIDE}\" y=\"{height - 10}\" text-anchor=\"end\"> </text>\n"
        + empty
        + "<g id=\"frames\">\n" + frames_svg + "</g>\n"
        "<script type=\"application/json\" id=\"flamegraph-config\">" + json.dumps(config) + "</script>\n"
        # Last, so that every element exists when it runs.
        "<script type=\"text/ecmascript\"><![CDATA[\n" + script + "]]></script>\n"
        "</svg>\n")
    out.write(document.encode("utf-8"))


def _text(value):
    """Text safe in XML character data and attribute values."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _fit(label, width):
    chars = int((width - 6) // (FONT_SIZE * FONT_WIDTH))
    if chars < 3:
        return ""
    return label if len(label) <= chars else label[:chars - 2] + ".."


def _frames(profile, tree):
    """The <g class="frame"> elements of every frame wide enough, and the deepest one's depth."""
    if not tree.total:
        return "", 0
    parents = tree.parents()
    self_weights = tree.self_weights(parents)
    count = len(tree)
    subtree_end = list(range(count))
    for node in range(count - 1, 0, -1):
        parent = parents[node]
        if subtree_end[node] > subtree_end[parent]:
            subtree_end[parent] = subtree_end[node]
    scale = (WIDTH - 2 * SIDE) / tree.total
    x = [0.0] * count
    next_child_x = [0.0] * count
    drawn = [False] * count
    parts, max_depth = [], 0
    for node in range(count):
        parent = parents[node]
        width = tree.totals[node] * scale
        if parent >= 0:
            x[node] = next_child_x[parent]
            next_child_x[parent] += width
            if not drawn[parent] or width < MIN_WIDTH:
                continue
        next_child_x[node] = x[node]
        drawn[node] = True
        depth = tree.depths[node]
        max_depth = max(max_depth, depth)
        frame = tree.frames[node]
        if frame < 0:
            label, color = flamegraph.ROOT_LABEL, flamegraph.ROOT_COLOR
        else:
            key = profile.frames[frame]
            label, color = key.label, flamegraph.frame_color(key)
        tip = "\n".join(flamegraph.tooltip(profile, tree, node, parent, self_weights[node]))
        y = TOP + depth * ROW_HEIGHT
        parts.append(
            f"<g class=\"frame\" data-n=\"{node}\" data-e=\"{subtree_end[node]}\" data-d=\"{depth}\" "
            f"data-x=\"{x[node]:.3f}\" data-w=\"{width:.3f}\"><title>{_text(tip)}</title>"
            f"<rect x=\"{SIDE + x[node]:.2f}\" y=\"{y}\" width=\"{max(width - 0.5, 0.1):.2f}\" "
            f"height=\"{ROW_HEIGHT - 1}\" fill=\"{color}\" rx=\"2\"/>"
            f"<text x=\"{SIDE + x[node] + 3:.2f}\" y=\"{y + ROW_HEIGHT - 4}\">{_text(_fit(label, width))}</text></g>\n")
    return "".join(parts), max_depth
