"""Firefox Profiler's Gecko profile format (profiler.firefox.com; ui.perfetto.dev imports it too).

Written against the format's type definition (firefox-devtools/profiler,
src/types/gecko-profile.ts) and docs-developer/gecko-profile-format.md, at Gecko version 31:
the frame table without the "optimizations" column (removed in 27) and no source table (made
mandatory in 33, which the profiler's own upgraders add when it loads an older version). The
profiler upgrades any older Gecko version on load, so declaring 31 and matching its shape
keeps the file loadable by current and somewhat older front ends.

One Gecko thread per (pid, tid), each with its own string, frame and stack tables (the format
has no shared tables at this version):

* samples: the timeline's CPU samples, times in milliseconds from the start of the capture
  (`meta.startTime` is 0: the Profile knows only CLOCK_MONOTONIC, not the wall clock);
* frames: location strings the profiler classifies by pattern: ``name (file:line)`` for
  Python (shown as script functions with file and line), ``name (in module)`` for native and
  kernel symbols (shown as native functions of a library), the bare name for stack tags;
* markers: instrumented calls and off-CPU spans as interval markers, marks as instant markers,
  mark ranges as interval markers, in the marker chart and table.
"""

import json
import os

from .profile import KERNEL, NATIVE, PYTHON, TAG

GECKO_VERSION = 31

CATEGORIES = [
    {"name": "Python", "color": "yellow", "subcategories": ["Other"]},
    {"name": "Native", "color": "blue", "subcategories": ["Other"]},
    {"name": "Kernel", "color": "orange", "subcategories": ["Other"]},
    {"name": "Stack tag", "color": "purple", "subcategories": ["Other"]},
    {"name": "Other", "color": "grey", "subcategories": ["Other"]},
    {"name": "Off-CPU", "color": "red", "subcategories": ["Other"]},
    {"name": "Mark", "color": "green", "subcategories": ["Other"]},
]
CATEGORY = {PYTHON: 0, NATIVE: 1, KERNEL: 2, TAG: 3}
OTHER, OFFCPU, MARK = 4, 5, 6

INSTANT, INTERVAL = 0, 1  # marker phases

FRAME_SCHEMA = {"location": 0, "relevantForJS": 1, "innerWindowID": 2, "implementation": 3,
                "line": 4, "column": 5, "category": 6, "subcategory": 7}
STACK_SCHEMA = {"prefix": 0, "frame": 1}
SAMPLE_SCHEMA = {"stack": 0, "time": 1, "eventDelay": 2}
MARKER_SCHEMA = {"name": 0, "startTime": 1, "endTime": 2, "phase": 3, "category": 4, "data": 5}


def write(profile, out, options):
    out.write(json.dumps(build(profile, options), sort_keys=True, separators=(",", ":")).encode())


def location(frame):
    """The frame's location string, in the shapes the profiler's importer recognises."""
    if frame.kind == PYTHON:
        return f"{frame.name} ({frame.file or '<unknown>'}:{frame.line})"
    if frame.kind in (NATIVE, KERNEL) and frame.file:
        return f"{frame.name} (in {os.path.basename(frame.file)})"
    return frame.name


def build(profile, options):
    """The Gecko profile as a JSON-ready dict."""
    from .._version import __version__  # at call time: no import cycle with the package

    threads = {}

    def thread(pid, tid):
        builder = threads.get((pid, tid))
        if builder is None:
            builder = threads[(pid, tid)] = ThreadBuilder(profile, pid, tid)
        return builder

    for pid, tid in profile.threads:
        thread(pid, tid)
    for sample in sorted(profile.samples, key=lambda s: s.time_ns):
        if sample.metric == "cpu":
            thread(sample.pid, sample.tid).add_sample(sample)
        elif sample.metric == "offcpu":
            thread(sample.pid, sample.tid).add_marker(
                "Off-CPU", sample.time_ns, sample.time_ns + sample.weight, OFFCPU)
    for piece in sorted(profile.slices, key=lambda s: (s.start_ns, s.depth)):
        frame = profile.frames[piece.frame]
        thread(piece.pid, piece.tid).add_marker(
            frame.label, piece.start_ns, piece.end_ns, CATEGORY.get(frame.kind, OTHER))
    for mark in sorted(profile.marks, key=lambda m: (m.start_ns, m.text)):
        end = mark.end_ns if mark.kind == "range" else None
        thread(mark.pid, mark.tid).add_marker(mark.text, mark.start_ns, end, MARK)

    interval_ms = profile.sample_period_ns / 1e6 if profile.sample_period_ns else 1.0
    return {
        "meta": {
            "version": GECKO_VERSION,
            "startTime": 0,
            "shutdownTime": None,
            "interval": interval_ms,
            "stackwalk": 1,
            "debug": 0,
            "gcpoison": 0,
            "asyncstack": 0,
            "processType": 0,
            "product": options.title or profile.source or "etwtrace",
            "misc": f"etwtrace {__version__}",
            "presymbolicated": True,
            "categories": CATEGORIES,
            "markerSchema": [],
        },
        "libs": [],
        "pausedRanges": [],
        "processes": [],
        "threads": [threads[key].to_json() for key in sorted(threads)],
    }


class ThreadBuilder:
    def __init__(self, profile, pid, tid):
        self.profile = profile
        self.pid, self.tid = pid, tid
        self.strings, self.string_index = [], {}
        self.frames, self.frame_index = [], {}  # our frame number -> gecko frame index
        self.stacks, self.stack_index = [], {}  # (prefix, gecko frame) -> gecko stack index
        self.leaf_of_stack = {}  # our stack number -> gecko stack index
        self.samples, self.markers = [], []

    def string(self, text):
        index = self.string_index.get(text)
        if index is None:
            index = self.string_index[text] = len(self.strings)
            self.strings.append(text)
        return index

    def frame(self, number):
        index = self.frame_index.get(number)
        if index is None:
            key = self.profile.frames[number]
            index = self.frame_index[number] = len(self.frames)
            self.frames.append([self.string(location(key)), False, None, None,
                                key.line or None, None, CATEGORY.get(key.kind, OTHER), 0])
        return index

    def stack(self, number):
        """The gecko stack of one of our stacks, walking root to leaf: linear in its depth."""
        if number in self.leaf_of_stack:
            return self.leaf_of_stack[number]
        prefix = None
        for frame in self.profile.stacks[number]:
            key = (prefix, self.frame(frame))
            index = self.stack_index.get(key)
            if index is None:
                index = self.stack_index[key] = len(self.stacks)
                self.stacks.append([prefix, key[1]])
            prefix = index
        self.leaf_of_stack[number] = prefix
        return prefix

    def millis(self, time_ns):
        return (time_ns - self.profile.start_ns) / 1e6

    def add_sample(self, sample):
        self.samples.append([self.stack(sample.stack), self.millis(sample.time_ns), 0])

    def add_marker(self, name, start_ns, end_ns, category):
        if end_ns is None:
            self.markers.append([self.string(name), self.millis(start_ns), None, INSTANT, category, None])
        else:
            self.markers.append([self.string(name), self.millis(start_ns),
                                 self.millis(max(start_ns, end_ns)), INTERVAL, category, None])

    def to_json(self):
        name = self.profile.threads.get((self.pid, self.tid)) or f"tid {self.tid}"
        process = self.profile.processes.get(self.pid) or f"pid {self.pid}"
        self.markers.sort(key=lambda m: m[1])
        return {
            "name": name,
            "processName": process,
            "processType": "default",
            "pid": self.pid,
            "tid": self.tid,
            "registerTime": 0,
            "unregisterTime": None,
            "samples": {"schema": SAMPLE_SCHEMA, "data": self.samples},
            "markers": {"schema": MARKER_SCHEMA, "data": self.markers},
            "frameTable": {"schema": FRAME_SCHEMA, "data": self.frames},
            "stackTable": {"schema": STACK_SCHEMA, "data": self.stacks},
            "stringTable": self.strings,
        }
