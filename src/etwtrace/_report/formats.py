"""Every output format of `python -m etwtrace report`: one line each, one module each.

A format module has ``write(profile, out, options)``: `profile` is a `profile.Profile`, `out` a
binary file object, `options` a `ReportOptions`. Adding a format is one module, one line in
FORMATS and one test file.
"""

from dataclasses import dataclass
from typing import Optional


class Format:
    def __init__(self, name, module, suffix, timeline, description):
        self.name = name
        self.module = module  # etwtrace._report.<module>
        self.suffix = suffix  # default file name suffix for -o
        self.timeline = timeline  # needs profile.slices / marks / samples
        self.description = description

    def writer(self):
        import importlib

        return importlib.import_module(f"etwtrace._report.{self.module}").write


FORMATS = {f.name: f for f in (
    Format("summary", "summary", ".txt", False, "text summary (the default; printed on the terminal)"),
    Format("html", "html", ".html", False, "self-contained page: interactive flame graphs and the summary"),
    Format("svg", "svg", ".svg", False, "standalone interactive flame graph"),
    Format("collapsed", "collapsed", ".folded", False, "folded stacks (flamegraph.pl, inferno, speedscope)"),
    Format("speedscope", "speedscope", ".speedscope.json", True, "speedscope JSON (speedscope.app)"),
    Format("perfetto", "perfetto", ".perfetto.json", True, "Chrome trace JSON (ui.perfetto.dev, chrome://tracing)"),
    Format("pprof", "pprof", ".pb.gz", False, "gzipped profile.proto (go tool pprof, pprof -http)"),
    Format("gecko", "gecko", ".gecko.json", True, "Firefox Profiler (profiler.firefox.com)"),
)}


@dataclass
class ReportOptions:
    metric: Optional[str] = None  # one metric for single-metric formats (default: the first present)
    title: str = ""  # shown in HTML/SVG titles; default: the source path
    raw: bool = False  # no stack-tag folding
    per_thread: bool = False  # summary: one section per process and thread
    top: int = 25  # summary: rows per table
    color: bool = False  # summary: ANSI colours (a terminal)
