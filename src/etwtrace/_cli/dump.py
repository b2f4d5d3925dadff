"""python -m etwtrace dump PATH: every event of a capture or trace file, one line each."""

import argparse
import os
import sys
import warnings

from .. import _bundle
from .._errors import ReadError, UsageError
from .._schema import CSWITCH, PYTHON_EVENTS, SAMPLED_PROFILE

EVENT_NAMES = PYTHON_EVENTS | {SAMPLED_PROFILE, CSWITCH}

USAGE = "python -m etwtrace dump PATH [--pid PID] [--tid TID] [--event NAME] [--absolute]"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message}; usage: {USAGE}")


def _parser():
    parser = _Parser(prog="python -m etwtrace dump", usage=USAGE, add_help=True,
                     description="Prints every event of a capture (or trace file) as one line of "
                                 "text, in time order: time, event name, pid/tid, fields, then the "
                                 "stack, leaf first.")
    parser.add_argument("path", metavar="PATH", help="a capture directory or a trace file")
    parser.add_argument("--pid", type=int, action="append", help="only this process (repeatable)")
    parser.add_argument("--tid", type=int, action="append", help="only this thread (repeatable)")
    parser.add_argument("--event", action="append", metavar="NAME", help="only events named NAME (repeatable)")
    parser.add_argument("--absolute", action="store_true",
                        help="times as CLOCK_MONOTONIC seconds (default: seconds since the first event)")
    return parser


def _check_path(path):
    """One sentence for a path that dump cannot read, or None."""
    if not os.path.exists(path):
        return f"{path} does not exist; give the PATH that --capture wrote, or a trace file"
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path) and _bundle.is_capture(parent) and not path.endswith(_bundle.TRACE_SUFFIX):
        return (f"{path} is part of the capture {parent}; give the capture directory itself: "
                f"python -m etwtrace dump {parent}")
    return None


def main(args):
    options = _parser().parse_args(args)
    path = options.path
    problem = _check_path(path)
    if problem:
        print(f"etwtrace: {problem}", file=sys.stderr)
        return 1
    unknown = sorted(set(options.event or ()) - EVENT_NAMES)
    if unknown:
        print(f"etwtrace: no event is named {unknown[0]!r}; the events are {', '.join(sorted(EVENT_NAMES))}",
              file=sys.stderr)
        return 1
    from .._read import format_event, read

    damaged = []
    try:
        out = sys.stdout
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            origin = None
            for event in read(path, pid=options.pid, thread_id=options.tid, names=options.event):
                if origin is None:
                    origin = 0 if options.absolute else event.timestamp
                out.write(format_event(event, origin) + "\n")
        out.flush()
        for warning in caught:
            print(f"etwtrace: warning: {warning.message}", file=sys.stderr)
            damaged.append("damaged" in str(warning.message))
        if origin is None and caught:
            print(f"etwtrace: {path} holds no complete event", file=sys.stderr)
            return 1
    except BrokenPipeError:  # `... | head`: stop quietly
        from .._stdout import detach_closed_stdout

        detach_closed_stdout()
        return 0
    except ReadError as ex:
        print(f"etwtrace: {ex}", file=sys.stderr)
        return 1
    except OSError as ex:
        print(f"etwtrace: cannot read {ex.filename or path} ({ex.strerror})", file=sys.stderr)
        return 1
    return 1 if any(damaged) else 0
