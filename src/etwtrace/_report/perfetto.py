"""Chrome trace event JSON, "JSON Object Format" (ui.perfetto.dev, chrome://tracing).

Times are microseconds (floats, so nanoseconds survive as decimals) from the start of the
capture. What goes in:

* process_name / thread_name metadata events ("M") for every named process and thread;
* instrumented calls as complete events ("X") named by the frame's label, with the function's
  file and first line in args; off-CPU spans (a thread switched out, from the timeline's
  context switches) as "X" events named "off-CPU" on the same thread, carrying the stack they
  were switched out at. Both go through `nesting.nest`, so each thread's "X" events nest
  properly, which both viewers require;
* marks as thread-scoped instant events ("i"), stack marks with their stack ("sf"), and mark
  ranges as nestable async events ("b"/"e") on their own track, since a range need not nest
  with the calls it spans;
* CPU samples in the format's `samples` array, each naming its stack in the `stackFrames`
  dictionary (a tree: one entry per distinct stack prefix, leaf to root by `parent`).

chrome://tracing shows the samples; Perfetto's JSON importer documents no support for the
`samples` array, so in ui.perfetto.dev CPU samples are better seen through the gecko format.
"""

import json

from .nesting import nest

OFFCPU_NAME = "off-CPU"


def write(profile, out, options):
    out.write(json.dumps(build(profile, options), sort_keys=True, separators=(",", ":")).encode())


def build(profile, options):
    """The trace as a JSON-ready dict."""
    from .._version import __version__  # at call time: no import cycle with the package

    stacks = StackFrames(profile)
    events = metadata_events(profile)
    events += thread_span_events(profile, stacks)
    events += mark_events(profile, stacks)
    samples = [
        with_stack({"pid": s.pid, "tid": s.tid, "ts": micros(profile, s.time_ns), "name": "cpu",
                    "weight": s.weight}, stacks, s.stack)
        for s in sorted(profile.samples, key=lambda s: (s.time_ns, s.pid, s.tid))
        if s.metric == "cpu"
    ]
    document = {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "exporter": f"etwtrace {__version__}",
            "source": profile.source,
            "title": options.title or profile.source,
            "mode": profile.mode,
        },
    }
    if stacks.frames:
        document["stackFrames"] = stacks.frames
    if samples:
        document["samples"] = samples
    return document


def with_stack(event, stacks, stack):
    """The event with its stack's "sf" id; an empty stack has none."""
    ident = stacks.id(stack)
    if ident is not None:
        event["sf"] = ident
    return event


def micros(profile, time_ns):
    return (time_ns - profile.start_ns) / 1000


class StackFrames:
    """The `stackFrames` dictionary, filled with the stacks that events refer to."""

    def __init__(self, profile):
        self.profile = profile
        self.labels = [frame.label for frame in profile.frames]
        self.frames = {}  # id (a string) -> {"name", "category", "parent"?}
        self._nodes = {}  # (parent id or None, frame number) -> id
        self._stack_ids = {}  # stack number -> id of its leaf node

    def id(self, stack):
        """The id of a stack's leaf entry (None for an empty stack), adding the entries of its frames the first time.
        Walking parent to child keeps this linear in the stack's depth."""
        leaf = self._stack_ids.get(stack, False)
        if leaf is not False:
            return leaf
        parent = None
        for frame in self.profile.stacks[stack]:
            node = self._nodes.get((parent, frame))
            if node is None:
                node = self._nodes[(parent, frame)] = str(len(self._nodes) + 1)
                entry = {"name": self.labels[frame], "category": self.profile.frames[frame].kind}
                if parent is not None:
                    entry["parent"] = parent
                self.frames[node] = entry
            parent = node
        self._stack_ids[stack] = parent
        return parent


def metadata_events(profile):
    events = []
    for pid, command in sorted(profile.processes.items()):
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid,
                       "args": {"name": command}})
    for (pid, tid), name in sorted(profile.threads.items()):
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                       "args": {"name": name}})
    return events


def thread_span_events(profile, stacks):
    """Each thread's calls and off-CPU spans as properly nested "X" events."""
    by_thread = {}
    for piece in profile.slices:
        by_thread.setdefault((piece.pid, piece.tid), []).append(
            (piece.start_ns, piece.end_ns, ("call", piece.frame)))
    for sample in profile.samples:
        if sample.metric == "offcpu":
            by_thread.setdefault((sample.pid, sample.tid), []).append(
                (sample.time_ns, sample.time_ns + sample.weight, ("offcpu", sample.stack)))
    events = []
    origin = profile.start_ns
    for (pid, tid), spans in sorted(by_thread.items()):
        for start, end, _depth, (kind, number) in nest(spans):
            if kind == "call":
                frame = profile.frames[number]
                events.append({"ph": "X", "pid": pid, "tid": tid, "ts": (start - origin) / 1000,
                               "dur": (end - start) / 1000, "name": stacks.labels[number],
                               "cat": frame.kind, "args": {"file": frame.file, "line": frame.line}})
            else:
                leaf = profile.stacks[number][-1:]
                events.append(with_stack(
                    {"ph": "X", "pid": pid, "tid": tid, "ts": (start - origin) / 1000,
                     "dur": (end - start) / 1000, "name": OFFCPU_NAME, "cat": "offcpu",
                     "args": {"switched out in": stacks.labels[leaf[0]] if leaf else ""}},
                    stacks, number))
    return events


def mark_events(profile, stacks):
    events = []
    marks = sorted(profile.marks, key=lambda m: (m.start_ns, m.pid, m.tid, m.kind, m.text))
    for number, mark in enumerate(marks):
        common = {"pid": mark.pid, "tid": mark.tid, "name": mark.text, "cat": "mark"}
        if mark.kind == "range" and mark.end_ns is not None:
            # async events pair by (cat, id) within a process; one id per range
            ident = f"0x{number:x}"
            events.append(dict(common, ph="b", id=ident, ts=micros(profile, mark.start_ns)))
            events.append(dict(common, ph="e", id=ident,
                               ts=micros(profile, max(mark.start_ns, mark.end_ns))))
            continue
        event = dict(common, ph="i", s="t", ts=micros(profile, mark.start_ns))
        if mark.kind == "stack" and mark.stack is not None:
            with_stack(event, stacks, mark.stack)
        events.append(event)
    return events
