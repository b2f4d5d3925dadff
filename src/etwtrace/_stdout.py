"""What the command line does when its reader goes away (`... | head`)."""

import os
import sys


def detach_closed_stdout():
    """Point stdout at /dev/null after a BrokenPipeError, so the exit flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
