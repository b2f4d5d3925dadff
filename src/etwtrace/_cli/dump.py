"""python -m etwtrace dump PATH: every event of a capture or trace file, one line each."""

import argparse
import os
import sys

from .._errors import ReadError, UsageError

USAGE = "python -m etwtrace dump PATH [--pid PID] [--tid TID] [--event NAME]"


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
    return parser


def main(args):
    options = _parser().parse_args(args)
    path = options.path
    if not os.path.exists(path):
        print(f"etwtrace: {path} does not exist; give the PATH that --capture wrote", file=sys.stderr)
        return 1
    from .._read import format_event, read

    try:
        out = sys.stdout
        for event in read(path, pid=options.pid, thread_id=options.tid, names=options.event):
            out.write(format_event(event) + "\n")
    except BrokenPipeError:
        # `dump | head`: stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ReadError, OSError) as ex:
        print(f"etwtrace: cannot read {path}: {ex}", file=sys.stderr)
        return 1
    return 0
