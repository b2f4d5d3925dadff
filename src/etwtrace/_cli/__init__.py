"""The command line: python -m etwtrace [options] -- script.py args... (or -- -m module ...).

    options.py  the option table and parser (and the help text)
    run.py      runs the target exactly as `python script.py` / `python -m module` would
    dump.py     python -m etwtrace dump PATH
    pth.py      --enable / --disable (etwtrace.pth)

`report` is etwtrace._report's own command line.
"""

import sys

import etwtrace

from .._errors import EtwtraceError, UsageError
from . import pth
from .options import HELP_TEXT, parse

__all__ = ["main", "console_main", "HELP_TEXT", "UsageError"]

TRACER_CLASSES = {"stack": "StackSamplingTracer", "instrumented": "InstrumentedTracer",
                  "sampler": "SamplingTracer"}


def _print_help():
    print("etwtrace for Linux, version", etwtrace.__version__)
    print(HELP_TEXT)


def main(args=None):
    args = list(sys.argv[1:] if args is None else args)
    try:
        return _main(args)
    except EtwtraceError as ex:
        print(f"etwtrace: {ex}", file=sys.stderr)
        return 1


def _main(args):
    if not args:
        _print_help()
        return 0
    if args[0] == "dump":
        from .dump import main as dump_main

        return dump_main(args[1:])
    if args[0] == "report":
        from .._report import main as report_main

        return report_main(args[1:])

    command = parse(args)
    tracer_cls = getattr(etwtrace, TRACER_CLASSES[command.mode]) if command.mode else None
    if command.target is not None and not command.unused:
        from .run import run_target

        tracer = (tracer_cls or etwtrace.StackSamplingTracer)(**command.tracer_options)
        return run_target(command.target, tracer, command.capture_path, command.capture_options,
                          quiet=command.quiet)

    for action, names in command.actions:
        if action == "help":
            _print_help()
        elif action == "version":
            print("etwtrace", etwtrace.__version__)
        elif action == "profile":
            print(etwtrace.get_profile_path())
        elif action == "stacktags":
            print(etwtrace.get_stacktags_path())
        elif command.unused:
            continue  # nothing that changes the environment when the command line is wrong
        elif action == "enable":
            pth.enable_pth(names[0] if names else "", names[1] if len(names) > 1 else None)
        elif action == "disable":
            pth.disable_pth()
    if ("info", ()) in command.actions and not command.unused:
        tracer = (tracer_cls or etwtrace.StackSamplingTracer)()
        print(tracer._get_technical_info())

    if command.unused:
        print(f"etwtrace: {_unused_message(command.unused)} (see python -m etwtrace --help; "
              "put the program to run after '--')", file=sys.stderr)
        return 1
    return 0


def _unused_message(unused):
    def shown(args):
        return " ".join(f'"{a}"' if " " in a else a for a in args)

    options = [a for a in unused if a.startswith("-")]
    others = [a for a in unused if not a.startswith("-")]
    parts = []
    if options:
        parts.append(f"unknown option{'s' if len(options) > 1 else ''} {shown(options)}")
    if others:
        parts.append(f"unexpected argument{'s' if len(others) > 1 else ''} {shown(others)}")
    return " and ".join(parts)


def console_main():
    """Entry point of the `etwtrace` console script."""
    sys.exit(main())
