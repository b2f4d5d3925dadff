"""The launcher: python -m etwtrace [options] -- script.py args... (or -- -m module args...)."""

import os
import sys

import etwtrace

from . import _launch

PTH_FILE = "etwtrace.pth"
PTH_TEMPLATE = "import etwtrace; etwtrace.enable_if({!r}, {!r})"

HELP_TEXT = """\
Usage: python -m etwtrace [--stack | --instrument] [--capture PATH] -- script.py [args...]
       python -m etwtrace [--stack | --instrument] [--capture PATH] -- -m module [args...]
       python -m etwtrace [--stack | --instrument] --capture PATH [--capture-profile NAME]
                          [--profile-file FILE] -- script.py [args...]

    Runs a script or module with tracing enabled, exactly as `python script.py args...` would
    (same sys.argv, __main__, output and exit status).

    --stack             Stack sampling (default): every Python function runs through its own
                        native thunk, published in /tmp/perf-<pid>.map and a jitdump file, so
                        `perf record` shows py::<qualname>:<file> frames.
                          python -m etwtrace --stack -- app.py
    --instrument, --instrumented
                        Instrumentation: record entry and exit of every Python and C call.
                          python -m etwtrace --instrument -- -m mypkg.cli --verbose
    --capture PATH      Record the run with `perf record` (and the trace file in
                        instrumented mode) and save everything in the directory PATH
                        (replaced if it is an earlier capture; see docs/capture.md).
                          python -m etwtrace --capture run.etwtrace -- app.py
    --capture-profile NAME
                        The recording profile to capture with: Default (CPU samples and
                        context switches with DWARF stacks, plus the Python probes),
                        Minimal (Python probes and process/thread events, no sampling),
                        FramePointers, or any section of the profile file.
                          python -m etwtrace --capture run.etwtrace --capture-profile Minimal -- app.py
    --profile-file PATH Read the profiles from PATH instead of the shipped file (start
                        from a copy of the file that --profile prints).
                          python -m etwtrace --capture run.etwtrace --profile-file my.ini -- app.py

Usage: python -m etwtrace dump PATH [--pid PID] [--tid TID] [--event NAME]

    Prints every event of a capture (or trace file) as one line of text, in time order:
    time, event name, pid/tid, fields, then the stack, leaf first.
                          python -m etwtrace dump run.etwtrace --event PythonStackSample

Usage: python -m etwtrace --enable [ENABLE_VAR [TYPE_VAR]]

    Starts tracing automatically in every interpreter of this environment, by writing
    etwtrace.pth into its site-packages. With ENABLE_VAR, only when that variable is set to a
    true value (anything not starting with 0, n or f). TYPE_VAR (default ENABLE_VAR_TYPE, or
    ETWTRACE_TYPE) selects the mode: stack (default) or instrument.
                          python -m etwtrace --enable PYTRACE  &&  PYTRACE=1 python app.py

Usage: python -m etwtrace --disable

    Removes the etwtrace.pth written by --enable.
                          python -m etwtrace --disable

Other options:
    -h, -?, --help      Show this help.
    --version           Show the version.
    --info              Show technical information for bug reports (a Python tuple).
                          python -m etwtrace --info --instrument
    --profile           Show the path of the shipped perf recording-profile file.
    --stacktags         Show the path of the shipped stack-tags file.
"""


class UsageError(Exception):
    """A mistake on the command line: reported in one sentence, exit status 1."""


def _print_help():
    print("etwtrace for Linux, version", etwtrace.__version__)
    print(HELP_TEXT)


def _site_packages():
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def enable_pth(enable_var, type_var):
    """Write etwtrace.pth into this environment's site-packages; returns its path."""
    from pathlib import Path

    type_var = type_var or (f"{enable_var}_TYPE" if enable_var else "ETWTRACE_TYPE")
    pth_file = Path(_site_packages()) / PTH_FILE
    package_parent = Path(etwtrace.__file__).resolve().parent.parent
    pth_file.write_text(f"{package_parent}\n{PTH_TEMPLATE.format(enable_var, type_var)}\n", encoding="utf-8")
    print("Created", pth_file)
    if enable_var:
        print(f"Set {enable_var}=1 in the environment to activate tracing")
    print(f"Set {type_var}=instrumented to use instrumented events rather than stacks")
    return pth_file


def _is_our_pth(path):
    try:
        return "etwtrace.enable_if(" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def disable_pth():
    """Remove every etwtrace.pth we wrote along sys.path; returns the removed paths."""
    from pathlib import Path

    removed = []
    seen = set()
    for entry in [_site_packages(), *sys.path]:
        pth_file = Path(entry or ".") / PTH_FILE
        key = os.path.normcase(os.path.abspath(pth_file))
        if key in seen:
            continue
        seen.add(key)
        if pth_file.is_file() and not pth_file.is_symlink() and _is_our_pth(pth_file):
            pth_file.unlink()
            print("Removed", pth_file)
            removed.append(pth_file)
    if not removed:
        print("No etwtrace.pth was found; automatic tracing was not enabled in this environment")
    return removed


def _take_value(option, args, example="run.etwtrace"):
    if not args or args[0].startswith("-"):
        raise UsageError(f"{option} needs a value, for example: {option} {example}")
    return args.pop(0)


def main(args=None):
    args = list(sys.argv[1:] if args is None else args)
    try:
        return _main(args)
    except UsageError as ex:
        print(f"etwtrace: {ex}", file=sys.stderr)
        return 1


def _main(args):
    if not args:
        _print_help()
        return 0
    if args[0] == "dump":
        from . import _perfdata

        return _perfdata.dump_main(args[1:])
    unused_args = []
    tracer_cls = None
    capture_path = None
    capture_options = {}
    show_info = False

    while args:
        arg = args.pop(0)
        if arg == "--":
            if not args:
                raise UsageError("nothing to run after '--'; give a script or -m module")
            if unused_args:
                break
            tracer = (tracer_cls or etwtrace.StackSamplingTracer)()
            if capture_options and capture_path is None:
                option = "--capture-profile" if "profile_name" in capture_options else "--profile-file"
                raise UsageError(f"{option} only applies to a capture; add --capture PATH")
            return _launch.run_target(args, tracer, capture_path, capture_options)
        if arg in ("-h", "-?", "--help"):
            _print_help()
            unused_args.extend(args)
            break
        if arg == "--version":
            print("etwtrace", etwtrace.__version__)
            unused_args.extend(args)
            break
        if arg == "--stack":
            tracer_cls = etwtrace.StackSamplingTracer
        elif arg in ("--instrument", "--instrumented"):
            tracer_cls = etwtrace.InstrumentedTracer
        elif arg == "--capture" or arg.startswith("--capture="):
            capture_path = arg.partition("=")[2] if "=" in arg else _take_value("--capture", args)
            if not capture_path:
                raise UsageError("--capture needs a path, for example: --capture run.etwtrace")
        elif arg == "--capture-profile" or arg.startswith("--capture-profile="):
            value = arg.partition("=")[2] if "=" in arg else _take_value("--capture-profile", args, "Minimal")
            if not value:
                raise UsageError("--capture-profile needs a profile name, for example: --capture-profile Minimal")
            capture_options["profile_name"] = value
        elif arg == "--profile-file" or arg.startswith("--profile-file="):
            value = arg.partition("=")[2] if "=" in arg else _take_value("--profile-file", args, "my-profiles.ini")
            if not value:
                raise UsageError("--profile-file needs a path, for example: --profile-file my-profiles.ini")
            capture_options["profile_file"] = value
        elif arg == "--profile":
            print(etwtrace.get_profile_path())
        elif arg == "--stacktags":
            print(etwtrace.get_stacktags_path())
        elif arg == "--info":
            show_info = True
        elif arg == "--enable":
            enable_var = ""
            type_var = None
            if args and not args[0].startswith("-"):
                enable_var = args.pop(0)
                if args and not args[0].startswith("-"):
                    type_var = args.pop(0)
            enable_pth(enable_var, type_var)
            unused_args.extend(args)
            break
        elif arg == "--disable":
            disable_pth()
            unused_args.extend(args)
            break
        else:
            unused_args.append(arg)

    if show_info:
        tracer = (tracer_cls or etwtrace.StackSamplingTracer)()
        print(tracer._get_technical_info())

    if unused_args:
        shown = " ".join(f'"{a}"' if " " in a else a for a in unused_args)
        print(
            f"etwtrace: the following arguments were not used: {shown} "
            "(see python -m etwtrace --help; put the program after '--')",
            file=sys.stderr,
        )
        return 1
    return 0


def console_main():
    """Entry point of the `etwtrace` console script."""
    sys.exit(main())
