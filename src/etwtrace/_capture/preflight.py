"""Checks made before a capture runs anything: where it goes, and what it records from."""

import os

from .. import _bundle
from .._errors import CaptureError


def check_destination(path):
    """Absolute PATH if a capture may be written there, else CaptureError."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise CaptureError(
            f"the directory {parent} does not exist; create it first (mkdir -p {parent}) "
            "or give --capture a path in an existing directory")
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
        raise CaptureError(
            f"{path} already exists and is not an etwtrace capture; choose another --capture "
            "path or remove that file yourself")
    if os.path.isdir(path) and os.listdir(path) and not _bundle.is_capture(path):
        raise CaptureError(
            f"{path} is a directory that is not an etwtrace capture; choose another --capture "
            "path (an existing capture is replaced, anything else is left alone)")
    if not os.access(parent, os.W_OK):
        raise CaptureError(f"cannot write in {parent}; choose a --capture path in a writable directory")
    return path


def extension_library():
    """Path of the built native module, whose USDT probes the capture records."""
    from .. import _etwtrace

    return _etwtrace.__file__
