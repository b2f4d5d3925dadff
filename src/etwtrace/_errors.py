"""Every exception etwtrace raises for a user's mistake or an unusable input.

Each carries one sentence saying what is wrong and how to fix it; the command line prints it
after "etwtrace: " and exits with a non-zero status, never with a traceback.
"""


class EtwtraceError(Exception):
    """Base class: the message is one sentence with the fix."""


class UsageError(EtwtraceError):
    """A mistake on the command line (exit status 1)."""


class TracingError(EtwtraceError, OSError):
    """A tracer cannot start (its output cannot be written, for instance)."""


class CaptureError(EtwtraceError):
    """A capture cannot start or finish."""


class ProfileError(CaptureError):
    """A recording-profile file or name is unusable."""


class ProbeError(CaptureError):
    """The USDT probes cannot be registered."""


class ReadError(EtwtraceError, ValueError):
    """A trace file or capture cannot be read (missing, not ours, damaged beyond use)."""


class ReportError(EtwtraceError):
    """`python -m etwtrace report` cannot make its report: an input it cannot use or an output it
    cannot write (exit status 2)."""


class StackTagsError(ReportError):
    """A stack-tags file cannot be read or has a malformed rule."""


class MissingDependency(ReportError):
    """A package a report format needs is not installed; the message says what to install."""


# The name the capture reader used for it before the package was laid out by concern.
CaptureReadError = ReadError
