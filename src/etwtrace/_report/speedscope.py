"""speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json).

One file holds every frame once (`shared.frames`, indexed by our frame numbers, so a stack of
the Profile is already a speedscope stack: root first) and a list of profiles:

* a "sampled" profile per metric and thread, one entry per distinct stack with its weight
  (CPU samples as a count, off-CPU and instrumented self time in nanoseconds, calls as a count);
* an "evented" profile per thread of an instrumented trace, from its timeline of calls: open
  and close events in nanoseconds from the start of the capture, balanced and nested.

speedscope shows one profile at a time and offers the others in its profile menu, so each
profile is named by what it measures and which thread it is.
"""

import json

from .nesting import open_close_events
from .profile import PYTHON

SCHEMA = "https://www.speedscope.app/file-format-schema.json"

# metric -> (speedscope unit, what the profile name calls it)
SAMPLED_UNITS = {
    "cpu": ("none", "CPU samples"),
    "offcpu": ("nanoseconds", "off-CPU time"),
    "instrumented": ("nanoseconds", "instrumented self time"),
    "calls": ("none", "calls"),
}


def write(profile, out, options):
    out.write(json.dumps(build(profile, options), sort_keys=True, separators=(",", ":")).encode())


def build(profile, options):
    """The speedscope file as a JSON-ready dict."""
    from .._version import __version__  # at call time: no import cycle with the package

    metrics = [options.metric] if options.metric else profile.metrics
    profiles = []
    for metric in metrics:
        if metric in SAMPLED_UNITS:
            profiles += sampled_profiles(profile, metric)
    if profile.slices and (not options.metric or options.metric == "instrumented"):
        profiles += evented_profiles(profile)
    return {
        "$schema": SCHEMA,
        "exporter": f"etwtrace {__version__}",
        "name": options.title or profile.source or "etwtrace",
        "activeProfileIndex": 0,
        "shared": {"frames": [speedscope_frame(frame) for frame in profile.frames]},
        "profiles": profiles,
    }


def speedscope_frame(frame):
    """speedscope shows `name` in the graph and file:line beside it: Python frames keep their
    qualname, native and kernel frames carry their module in the name, as in our flame graphs."""
    out = {"name": frame.name if frame.kind == PYTHON else frame.label}
    if frame.file:
        out["file"] = frame.file
    if frame.line:
        out["line"] = frame.line
    return out


def thread_title(profile, pid, tid):
    thread = profile.threads.get((pid, tid))
    process = profile.processes.get(pid)
    parts = [f"{process} (pid {pid})" if process else f"pid {pid}",
             f"{thread} (tid {tid})" if thread else f"tid {tid}"]
    return ", ".join(parts)


def sampled_profiles(profile, metric):
    unit, what = SAMPLED_UNITS[metric]
    by_thread = {}
    for (pid, tid, stack), weight in profile.weights.get(metric, {}).items():
        if weight:
            by_thread.setdefault((pid, tid), []).append((stack, weight))
    profiles = []
    for (pid, tid), entries in sorted(by_thread.items()):
        entries.sort()
        total = sum(weight for _stack, weight in entries)
        profiles.append({
            "type": "sampled",
            "name": f"{what}: {thread_title(profile, pid, tid)}",
            "unit": unit,
            "startValue": 0,
            "endValue": total,
            "samples": [list(profile.stacks[stack]) for stack, _weight in entries],
            "weights": [weight for _stack, weight in entries],
        })
    return profiles


def evented_profiles(profile):
    by_thread = {}
    for piece in profile.slices:
        by_thread.setdefault((piece.pid, piece.tid), []).append(
            (piece.start_ns - profile.start_ns, piece.end_ns - profile.start_ns, piece.frame))
    span = max(0, profile.end_ns - profile.start_ns)
    profiles = []
    for (pid, tid), spans in sorted(by_thread.items()):
        events = [{"type": "O" if kind == "open" else "C", "at": at, "frame": frame}
                  for kind, at, frame in open_close_events(spans)]
        # A call entered before the capture's first event (clock skew) widens the range.
        start = min([0] + [event["at"] for event in events[:1]])
        end = max([span] + [event["at"] for event in events[-1:]])
        profiles.append({
            "type": "evented",
            "name": f"calls over time: {thread_title(profile, pid, tid)}",
            "unit": "nanoseconds",
            "startValue": start,
            "endValue": end,
            "events": events,
        })
    return profiles
