"""`python -m etwtrace report PATH`: turn a capture or trace file into a report.

`build.build_profile` reads the events once into a `profile.Profile`; each output format of
`formats.FORMATS` renders that Profile (`write(profile, out, options)`). `main(argv)` is the
command line: the summary goes to the terminal, every other format to a file.
"""

import os
import sys
import threading
import time

from .._errors import EtwtraceError, ReportError, UsageError

__all__ = ["main", "run", "ReportError", "UsageError"]


REPORT_MARKER = b"etwtrace"  # our reports name us in their first bytes (see _is_our_report)

HOW_TO_OPEN = {
    "summary": "read it with: less {path}",
    "html": "open it in a browser: {uri}",
    "svg": "open it in a browser: {uri}",
    "collapsed": "render it with: flamegraph.pl {path} > flame.svg (or load it at https://www.speedscope.app)",
    "speedscope": "open it with: speedscope {path} (or load it at https://www.speedscope.app)",
    "perfetto": "open https://ui.perfetto.dev and drop {path} on it (or chrome://tracing)",
    "pprof": "open it with: go tool pprof -http=: {path}",
    "gecko": "open https://profiler.firefox.com and load {path}",
}


def _parser():
    import argparse

    from .formats import FORMATS

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(f"{message}; see python -m etwtrace report --help")

    formats = "\n".join(f"  {f.name:<11} {f.description}" for f in FORMATS.values())
    parser = Parser(
        prog="python -m etwtrace report", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Report where the time went in a capture (python -m etwtrace --capture PATH) "
                    "or an instrumented trace file.",
        epilog=f"formats:\n{formats}\n\nexamples:\n"
               "  python -m etwtrace report run.etwtrace                  summary on the terminal\n"
               "  python -m etwtrace report run.etwtrace --format html    flame graphs, run.etwtrace-report.html\n"
               "  python -m etwtrace report run.etwtrace --range 'phase one' --per-thread\n"
               "  python -m etwtrace report run.etwtrace --format collapsed -o - | flamegraph.pl > f.svg")
    parser.add_argument("path", metavar="PATH", help="a capture directory, a trace file or a directory of traces")
    parser.add_argument("--format", "-f", default="summary", metavar="FORMAT",
                        help="output format (below; default: summary)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output file ('-' for stdout; default: the terminal for summary, "
                             "PATH-report<suffix> next to the capture for the others)")
    parser.add_argument("--metric", metavar="M", help="cpu, offcpu, instrumented or calls, for formats "
                                                      "showing one (default: the first recorded)")
    parser.add_argument("--pid", type=int, action="append", default=[], help="only this process (repeatable)")
    parser.add_argument("--tid", type=int, action="append", default=[], help="only this thread (repeatable)")
    parser.add_argument("--from", dest="from_mark", metavar="MARK", help="start at the first mark with this text")
    parser.add_argument("--to", dest="to_mark", metavar="MARK", help="stop at the next mark with this text")
    parser.add_argument("--range", dest="range_text", metavar="TEXT",
                        help="only the time inside mark ranges with this text")
    parser.add_argument("--include", action="append", default=[], metavar="PREFIX",
                        help="only stacks through Python code in files starting with PREFIX (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PREFIX",
                        help="drop stacks through Python code in files starting with PREFIX (repeatable)")
    parser.add_argument("--raw", action="store_true", help="do not fold interpreter frames (stack tags)")
    parser.add_argument("--stacktags", metavar="FILE",
                        help="stack-tag rules to use instead of the shipped ones (python -m etwtrace --stacktags)")
    parser.add_argument("--per-thread", action="store_true", help="summary: also each process and thread")
    parser.add_argument("--top", type=int, default=25, metavar="N", help="summary: rows per table (default 25)")
    parser.add_argument("--title", default="", help="title of HTML and SVG reports (default: PATH)")
    return parser


def _default_output(path, fmt):
    return os.path.abspath(path).rstrip(os.sep) + "-report" + fmt.suffix


def _is_our_report(path):
    """Whether an existing file looks like a report we wrote (so a default name may replace it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        if head[:2] == b"\x1f\x8b":  # pprof is gzipped
            import gzip
            import zlib

            try:
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1 << 20)
            except (zlib.error, gzip.BadGzipFile):
                return False
    except OSError:
        return False
    return REPORT_MARKER in head or (path.endswith(".folded") and all(
        line.rpartition(b" ")[2].isdigit() for line in head.splitlines() if line))


def _check_output(out, chosen_by_user):
    if out == "-":
        return
    directory = os.path.dirname(os.path.abspath(out)) or "."
    if not os.path.isdir(directory):
        raise ReportError(f"cannot write {out}: the directory {directory} does not exist")
    if os.path.isdir(out):
        raise ReportError(f"cannot write {out}: it is a directory; give a file name with -o")
    if os.path.exists(out):
        if not os.access(out, os.W_OK):
            raise ReportError(f"cannot write {out}: permission denied")
        if not chosen_by_user and not _is_our_report(out):
            raise ReportError(f"{out} exists and is not an etwtrace report; name the output with -o")
    elif not os.access(directory, os.W_OK):
        raise ReportError(f"cannot write {out}: the directory {directory} is not writable")


def _write(writer, profile, out, options):
    """Writes the report, replacing OUT only once the whole report is ready."""
    if out == "-":
        writer(profile, sys.stdout.buffer, options)
        sys.stdout.buffer.flush()
        return
    if os.path.exists(out) and not os.path.isfile(out):  # /dev/stdout, a FIFO: write in place
        with open(out, "wb") as f:
            writer(profile, f, options)
        return
    temporary = f"{out}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            writer(profile, f, options)
        os.replace(temporary, out)
    except OSError as ex:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise ReportError(f"cannot write {out}: {ex.strerror or ex}") from None
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


class TerminalProgress:
    """A status line on a terminal when reading takes more than two seconds: the stage, with
    the samples read so far while reading perf's events, else the seconds spent in the stage."""

    def __init__(self, stream=None, delay=2.0):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.stage = "reading perf data"
        self.count = 0
        self._delay = delay
        self._stop = threading.Event()
        self._thread = None
        self._shown = False
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def line(self, stage, since):
        if stage == "reading perf data":
            return f"etwtrace: {stage}... {self.count:,} samples"
        return f"etwtrace: {stage}... {time.monotonic() - since:.0f} s"

    def _run(self):
        if self._stop.wait(self._delay):
            return
        stage, since = None, time.monotonic()
        while not self._stop.is_set():
            if self.stage != stage:
                stage, since = self.stage, time.monotonic()
            self.stream.write("\r\033[K" + self.line(stage, since))
            self.stream.flush()
            self._shown = True
            self._stop.wait(0.25)

    def done(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self._shown:
                self.stream.write("\r\033[K")
                self.stream.flush()


def run(argv):
    from .build import Filters, build_profile
    from .formats import FORMATS, ReportOptions
    from .profile import METRICS
    from .stacktags import StackTags

    args = _parser().parse_args(argv)
    fmt = FORMATS.get(args.format)
    if fmt is None:
        raise UsageError(f"unknown format {args.format!r}; the formats are {', '.join(FORMATS)}")
    if args.metric is not None and args.metric not in METRICS:
        raise UsageError(f"unknown metric {args.metric!r}; the metrics are {', '.join(METRICS)}")
    if args.top < 1:
        raise UsageError("--top needs a number of rows of at least 1")
    if args.range_text is not None and (args.from_mark or args.to_mark):
        raise UsageError("--range cannot be combined with --from/--to; use one way of choosing the time")
    if not os.path.exists(args.path):
        raise ReportError(f"{args.path} does not exist; give the PATH that python -m etwtrace --capture wrote "
                          f"(or an instrumented trace file)")
    out = args.output
    if out is None and fmt.name != "summary":
        out = _default_output(args.path, fmt)
        _check_output(out, chosen_by_user=False)
    elif out is not None:
        _check_output(out, chosen_by_user=True)
    writer = fmt.writer()  # an import error of a format module shows before the long read
    stacktags = StackTags.load(args.stacktags) if args.stacktags and not args.raw else None
    to_terminal = out is None or out == "-"
    options = ReportOptions(metric=args.metric, title=args.title or os.path.abspath(args.path), raw=args.raw,
                            per_thread=args.per_thread, top=args.top,
                            color=to_terminal and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    filters = Filters(args.pid, args.tid, args.from_mark, args.to_mark, args.range_text, args.include, args.exclude)
    profile = build_profile(args.path, options, timeline=fmt.timeline, filters=filters, progress=TerminalProgress(),
                            stacktags=stacktags)
    if args.metric is not None and args.metric not in profile.metrics and fmt.name != "summary":
        have = ", ".join(profile.metrics) or "none"
        raise ReportError(f"{args.path} has no {args.metric} data (it has: {have}); choose another --metric")
    if out is None:
        _write(writer, profile, "-", options)
        return 0
    _write(writer, profile, out, options)
    if out != "-":
        absolute = os.path.abspath(out)
        from pathlib import Path

        hint = HOW_TO_OPEN.get(fmt.name, "").format(path=out, uri=Path(absolute).as_uri())
        print(f"etwtrace: {fmt.name} report written to {absolute}" + (f"; {hint}" if hint else ""), file=sys.stderr)
    return 0


def main(argv):
    """`python -m etwtrace report ...`: 0 on success; 1 for a usage mistake, 2 for an input or
    output that cannot be used, each with one sentence on stderr."""
    try:
        return run(list(argv))
    except SystemExit as ex:  # --help
        return ex.code if isinstance(ex.code, int) else 0
    except UsageError as ex:
        print(f"etwtrace report: {ex}", file=sys.stderr)
        return 1
    except EtwtraceError as ex:  # ReportError, ReadError, StackTagsError, MissingDependency
        print(f"etwtrace report: {ex}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: stop quietly
        from .._stdout import detach_closed_stdout

        detach_closed_stdout()
        return 0
    except KeyboardInterrupt:
        print("etwtrace report: interrupted", file=sys.stderr)
        return 130
    except OSError as ex:
        print(f"etwtrace report: {ex.filename or ''}{': ' if ex.filename else ''}{ex.strerror or ex}",
              file=sys.stderr)
        return 2
    except Exception as ex:  # a bug of ours: still one line, with the way to see more
        if os.environ.get("ETWTRACE_DEBUG"):
            raise
        print(f"etwtrace report: internal error ({type(ex).__name__}: {ex}); set ETWTRACE_DEBUG=1 "
              f"to see where", file=sys.stderr)
        return 2
