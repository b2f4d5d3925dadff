"""What the HTML and SVG flame graphs share: the merged call tree, frame colours and wording.

The tree is built from `Profile.stack_weights(metric)` by merging stacks on common prefixes,
with a synthetic root ("all") above every stack's first frame. It is kept flat, in pre-order:
node *i* has a frame number (-1 for the root), a total weight (its own plus its subtree's) and
a depth; a node's children are the nodes after it one level deeper, up to the next node at its
depth or shallower. Flat arrays rather than nested lists because Python's json and recursive
walks both have depth limits that a deeply recursive program's stacks exceed.

Children are ordered heaviest first (ties by label), so the widest frames are at the left and
narrow ones, which a drawing may merge, gather at the right of each parent.

Both graphs are icicles: the root at the top and callees below. The root row and the widest
frames are then always at the top of the page, whatever the depth of the stacks, and deep
stacks grow down into the scrolled part of the page rather than pushing the root out of view.
"""

import colorsys
import os
import zlib

from .profile import KERNEL, METRICS, NATIVE, PYTHON, TAG

ROOT_LABEL = "all"

METRIC_TITLES = {
    "cpu": "CPU samples",
    "offcpu": "Off-CPU time",
    "instrumented": "Instrumented time",
    "calls": "Calls",
}

KIND_TITLES = {PYTHON: "Python", NATIVE: "native", KERNEL: "kernel", TAG: "stack tag"}

# (hue range in degrees, saturation, lightness range): a frame's place in its kind's range is
# chosen by a hash of its name, so one function keeps its colour across graphs and runs.
_PALETTES = {
    PYTHON: ((95, 200), 0.45, (0.55, 0.72)),  # greens to blues
    NATIVE: ((20, 40), 0.80, (0.55, 0.68)),  # oranges
    KERNEL: ((350, 372), 0.65, (0.60, 0.70)),  # reds
    TAG: ((0, 0), 0.0, (0.70, 0.80)),  # greys
}
ROOT_COLOR = "#d0d0d8"
MATCH_COLOR = "#e040e0"  # search matches, as in flamegraph.pl


class FlameTree:
    """The merged call tree of one metric, flat in pre-order (see the module's docstring)."""

    def __init__(self, metric, frames, totals, depths):
        self.metric = metric
        self.frames = frames  # frame number per node; -1 for the root
        self.totals = totals  # weight per node, its subtree included
        self.depths = depths  # 0 for the root

    @property
    def total(self):
        return self.totals[0] if self.totals else 0

    @property
    def max_depth(self):
        return max(self.depths) if self.depths else 0

    def __len__(self):
        return len(self.frames)

    def parents(self):
        """The parent of each node (-1 for the root), in one pass."""
        parents = []
        ancestors = []  # the current path from the root, by node number
        for node, depth in enumerate(self.depths):
            del ancestors[depth:]
            parents.append(ancestors[-1] if ancestors else -1)
            ancestors.append(node)
        return parents

    def self_weights(self, parents=None):
        """Each node's weight less its children's."""
        weights = list(self.totals)
        for node, parent in enumerate(parents if parents is not None else self.parents()):
            if parent >= 0:
                weights[parent] -= self.totals[node]
        return weights


def frame_labels(profile):
    """Every frame's label, by frame number: computed once for a whole report."""
    return [key.label for key in profile.frames]


def build_tree(profile, metric, labels=None):
    """The FlameTree of `metric` over all threads; `labels` from frame_labels, to reuse them."""
    if labels is None:
        labels = frame_labels(profile)
    # Each trie node is [total weight, {frame number: child node}].
    root = [0, {}]
    for stack, weight in profile.stack_weights(metric).items():
        if not weight:
            continue
        node = root
        node[0] += weight
        for frame in profile.stacks[stack]:
            child = node[1].get(frame)
            if child is None:
                child = node[1][frame] = [0, {}]
            child[0] += weight
            node = child

    def order(item):
        frame, node = item
        return (-node[0], labels[frame])

    frames, totals, depths = [], [], []
    pending = [(-1, root, 0)]  # explicit stack: no recursion limit on deep stacks
    while pending:
        frame, node, depth = pending.pop()
        frames.append(frame)
        totals.append(node[0])
        depths.append(depth)
        children = node[1].items()
        if len(children) > 1:
            children = sorted(children, key=order)
        pending.extend((f, n, depth + 1) for f, n in reversed(children))
    return FlameTree(metric, frames, totals, depths)


_SHADES = 64  # colours per kind: enough to tell neighbours apart, few enough to compute once


def _rgb(hue, saturation, lightness):
    red, green, blue = colorsys.hls_to_rgb(hue % 360 / 360, lightness, saturation)
    return "#%02x%02x%02x" % (round(red * 255), round(green * 255), round(blue * 255))


def _palette(kind):
    (hue_low, hue_high), saturation, (light_low, light_high) = _PALETTES[kind]
    out = []
    for shade in range(_SHADES):
        # Hue and lightness step at different rates, so neighbouring shades differ in both.
        hue_share = shade / (_SHADES - 1)
        light_share = (shade * 37 % _SHADES) / (_SHADES - 1)
        out.append(_rgb(hue_low + (hue_high - hue_low) * hue_share, saturation,
                        light_low + (light_high - light_low) * light_share))
    return out


_COLORS = {kind: _palette(kind) for kind in _PALETTES}


def frame_color(key):
    """The fill colour (``#rrggbb``) of a FrameKey: its kind's palette, picked by its name."""
    palette = _COLORS.get(key.kind, _COLORS[TAG])
    return palette[zlib.crc32(key.name.encode("utf-8", "surrogatepass")) % _SHADES]


def legend():
    """[(title, colour)] for each frame kind: a middle colour of its palette."""
    out = []
    for kind in (PYTHON, NATIVE, KERNEL, TAG):
        (hue_low, hue_high), saturation, (light_low, light_high) = _PALETTES[kind]
        out.append((KIND_TITLES[kind], _rgb((hue_low + hue_high) / 2, saturation, (light_low + light_high) / 2)))
    return out


def frame_location(key):
    """Where a frame comes from: ``file:line`` for Python, the module path for native/kernel."""
    if key.kind == PYTHON:
        return f"{key.file}:{key.line}" if key.line else key.file
    if key.kind == TAG:
        return ""
    return key.file


def format_duration(ns):
    """A time in ns as a person reads it: ``1.23 s``, ``45.6 ms``, ``789 µs``, ``12 ns``."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{ns:,.0f} ns"


def format_weight(profile, metric, weight):
    """A weight of `metric` with its unit: ``700 samples (701 ms)``, ``250 ms``, ``7 calls``."""
    unit = METRICS.get(metric, "")
    if unit == "ns":
        return format_duration(weight)
    if unit == "samples":
        text = f"{weight:,} sample" + ("" if weight == 1 else "s")
        if profile.sample_period_ns:
            text += f" ({format_duration(weight * profile.sample_period_ns)})"
        return text
    if unit == "calls":
        return f"{weight:,} call" + ("" if weight == 1 else "s")
    return f"{weight:,}"


def percent(part, whole):
    return f"{100.0 * part / whole:.2f}%" if whole else "0%"


def tooltip(profile, tree, node, parent, self_weight):
    """The lines describing a node: label, where it comes from, weight and its shares.

    parent: the parent's node number (-1 for the root); self_weight: from `tree.self_weights`.
    """
    frame = tree.frames[node]
    weight = tree.totals[node]
    if frame < 0:
        lines = [ROOT_LABEL]
    else:
        key = profile.frames[frame]
        lines = [key.label, KIND_TITLES.get(key.kind, key.kind)]
        location = frame_location(key)
        if location and key.kind != PYTHON:
            lines[-1] += f" module {os.path.basename(location)}"
            if os.path.basename(location) != location:
                lines.append(location)
        elif location:
            lines.append(location)
    lines.append(f"{format_weight(profile, tree.metric, weight)}, {percent(weight, tree.total)} of total")
    if parent >= 0:
        lines[-1] += f", {percent(weight, tree.totals[parent])} of parent"
    if self_weight and self_weight != weight:
        lines.append(f"self: {format_weight(profile, tree.metric, self_weight)}")
    return lines


def python_function_table(profile, metric):
    """[(frame number, self weight, total weight)] of every Python function with weight.

    self: weight of stacks whose innermost Python frame is the function, so native and kernel
    time under it (calls into C, system calls) counts as the Python function's own; total:
    weight of stacks in which the function appears, counted once per stack under recursion.
    Tag frames stand for folded runs of frames, so a tag is never a Python function here.
    """
    self_weights, total_weights = {}, {}
    for stack, weight in profile.stack_weights(metric).items():
        frames = profile.stacks[stack]
        innermost = None
        seen = set()
        for frame in frames:
            if profile.frames[frame].kind != PYTHON:
                continue
            innermost = frame
            if frame not in seen:
                seen.add(frame)
                total_weights[frame] = total_weights.get(frame, 0) + weight
        if innermost is not None:
            self_weights[innermost] = self_weights.get(innermost, 0) + weight
    return [(frame, self_weights.get(frame, 0), total) for frame, total in total_weights.items()]
