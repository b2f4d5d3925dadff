"""How this interpreter was started: its full command line, interpreter options included."""

import os
import sys

# Interpreter options that take the next argument as their value.
_OPTIONS_WITH_VALUE = ("-X", "-W", "--check-hash-based-pycs")


def original_argv():
    """sys.orig_argv, or on 3.9 (which has none) the command line the kernel recorded."""
    argv = getattr(sys, "orig_argv", None)
    if argv is not None:
        return list(argv)
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [a.decode(errors="surrogateescape") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def split_interpreter_options(argv):
    """(the interpreter's own options, the rest) of a command line without its argv[0]."""
    options = []
    args = list(argv)
    while args:
        arg = args[0]
        if arg == "--" or not arg.startswith("-") or arg.startswith("-m") or arg.startswith("-c"):
            break
        options.append(args.pop(0))
        if arg in _OPTIONS_WITH_VALUE and args:
            options.append(args.pop(0))
    return options, args


def runs_the_launcher(argv=None):
    """True if this interpreter was started to run etwtrace's launcher, however it was spelled:
    `python [options] -m etwtrace ...`, the `etwtrace` console script, or its __main__.py."""
    argv = original_argv() if argv is None else argv
    _options, rest = split_interpreter_options(argv[1:])
    if not rest:
        return False
    if rest[0] == "-m":
        return rest[1:2] == ["etwtrace"]
    if rest[0].startswith("-m"):
        return rest[0][2:] == "etwtrace"
    if rest[0].startswith("-"):
        return False
    script = os.path.abspath(rest[0])
    if os.path.basename(script) == "etwtrace":
        return True  # the console script (its name is ours; its code calls etwtrace._cli)
    here = os.path.dirname(os.path.abspath(__file__))
    return script == os.path.join(here, "__main__.py")
