"""How this interpreter was started: its full command line, interpreter options included."""

import sys


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
