"""etwtrace for Linux: make Python code visible to perf.

Enabling a tracer hooks Python function calls and publishes what a system profiler needs:

* StackSamplingTracer routes every Python function through its own native thunk and publishes
  the thunks in /tmp/perf-<pid>.map and a jitdump file, so `perf record` stacks show
  `py::<qualname>:<file>` frames between the native ones.
* InstrumentedTracer records entry and exit of every Python and C call into a lossless trace
  file (and fires USDT probes), for exact call counts and timelines.
* SamplingTracer samples every thread from inside the process: a signal per period of each
  thread's CPU time (or wall time) copies its Python stack, with line numbers, into a trace
  file. No hook runs between samples (docs/sampler.md).

The mark() function and mark_range() context manager emit an event (or start/stop pair) with
custom text, useful for finding spans of interest during analysis::

    with etwtrace.StackSamplingTracer():
        # Code to trace
        etwtrace.mark("marker event")
        with etwtrace.mark_range("start/stop span"):
            # Code to trace
"""

from ._errors import TracingError
from ._version import __version__

__all__ = [
    "StackSamplingTracer",
    "InstrumentedTracer",
    "SamplingTracer",
    "mark",
    "mark_range",
    "is_active",
    "enable_if",
    "get_profile_path",
    "get_stacktags_path",
    "read",
    "__version__",
]

_tracer = None

from ._schema import MARK as _MARK
from ._schema import RANGE_START as _RANGE_START
from ._schema import RANGE_STOP as _RANGE_STOP
from ._schema import STACK_SAMPLE as _STACK


def _native():
    from . import _etwtrace

    return _etwtrace


def _package_prefix():
    import os

    return os.path.dirname(os.path.abspath(__file__)) + os.sep


class _RangeMark:
    def __init__(self, text):
        self.mark = text

    def __enter__(self):
        _native().write_mark(self.mark, _RANGE_START)
        return self

    def __exit__(self, *exc_info):
        _native().write_mark(self.mark, _RANGE_STOP)


class _TracingMixin:
    _mode = None

    def __init__(self, **options):
        self._ignored_files = set()
        self._include_prefixes = []
        self._options = dict(options)
        self._module = _native()

    def __enter__(self):
        self.enable()
        return self

    def __exit__(self, *exc_info):
        self.disable()

    def enable(self):
        """Start tracing. Only one tracer may be active in a process at a time."""
        global _tracer
        if _tracer is not None:
            if _tracer is self:
                raise RuntimeError("this tracer is already enabled")
            raise RuntimeError(
                f"another etwtrace tracer ({type(_tracer).__name__}) is already active; "
                "disable it before enabling this one"
            )
        import threading

        self.ignore(threading.__file__)
        options = dict(self._options)
        # etwtrace's own code (the launcher, the capture's child set-up) is never traced.
        options["exclude_prefixes"] = [_package_prefix()]
        try:
            self._module.enable(self._mode, self._ignored_files, self._include_prefixes, options)
        except OSError as ex:
            raise _enable_failure(self._mode, ex) from None
        _tracer = self

    def disable(self):
        """Stop tracing. Functions already running keep working."""
        global _tracer
        if _tracer is self:
            _tracer = None
            self._module.disable()

    def ignore(self, *files):
        """Do not trace functions defined in these files (exact co_filename)."""
        self._ignored_files.update(str(f) for f in files)

    def include(self, *prefixes):
        """Trace only functions whose file starts with one of these prefixes."""
        self._include_prefixes.extend(str(p) for p in prefixes)

    def mark(self, mark):
        """Emit a PythonMark event with the given text."""
        self._module.write_mark(str(mark), _MARK)

    def mark_range(self, mark):
        """Context manager emitting a start/stop PythonMark pair around its body."""
        return _RangeMark(str(mark))

    def _mark_stack(self, mark):
        """Emit a PythonStackSample event: the system profiler records the stack here."""
        self._module.write_mark(str(mark), _STACK)

    def _get_technical_info(self):
        """A tuple describing the native module and interpreter, for bug reports."""
        return self._module._get_technical_info(self._mode)


def _enable_failure(mode, error):
    """The one-sentence TracingError for an OSError from the native enable()."""
    import os

    text = str(error).replace("etwtrace: ", "")
    variable = "ETWTRACE_TRACE_DIR" if mode in ("instrumented", "sampler") else "JITDUMPDIR"
    directory = os.environ.get(variable)
    if directory and not os.path.isdir(directory):
        return TracingError(f"{variable} names {directory}, which is not a directory; create it, "
                            f"or set {variable} to a writable directory")
    if directory and not os.access(directory, os.W_OK | os.X_OK):
        return TracingError(f"{variable} names {directory}, which this user cannot write in; "
                            f"set {variable} to a writable directory")
    if mode in ("instrumented", "sampler") and not directory and not os.access(os.getcwd(), os.W_OK | os.X_OK):
        return TracingError("the trace file goes to the current directory, which this user cannot "
                            "write in; set ETWTRACE_TRACE_DIR to a writable directory")
    return TracingError(f"tracing could not start ({text})")


class StackSamplingTracer(_TracingMixin):
    """Publishes a native thunk per Python function so perf's stack samples show Python frames."""

    _mode = "stack"


class InstrumentedTracer(_TracingMixin):
    """Records entry and exit of every Python and C call.

    trace_path: the trace file (default: $ETWTRACE_TRACE_DIR or the current directory,
    etwtrace-<pid>.etwtrace). samples=True also runs the sampler (SamplingTracer) for the same run, on the same clock:
    its samples go to a companion file beside the trace (etwtrace-<pid>.etwtrace ->
    etwtrace-<pid>.samples.etwtrace; samples_path), and read() or `report` of both files, or of
    their directory, give one timeline. sample_rate (per second of each thread's CPU time,
    default 100) and sample_clock ('cpu' or 'wall') are the sampler's rate and clock.
    """

    _mode = "instrumented"

    def __init__(self, samples=False, sample_rate=None, sample_clock=None, **options):
        if samples:
            options["samples"] = True
        if sample_rate is not None or sample_clock is not None:
            if not samples:
                raise ValueError("sample_rate and sample_clock need samples=True")
            options.update({k: v for k, v in (("sample_rate", sample_rate), ("sample_clock", sample_clock))
                            if v is not None})
        super().__init__(**options)

    @property
    def samples_path(self):
        """The file the samples go to with samples=True (None when not sampling)."""
        return self._module._sampler_trace_path()


class SamplingTracer(_TracingMixin):
    """Samples every thread's stack on a signal, in-process, into a trace file (docs/sampler.md).

    Options: rate (samples per second of each thread's CPU time, default 100), clock ('cpu',
    or 'wall' to sample sleeping and blocked threads too), trace_path (default:
    $ETWTRACE_TRACE_DIR or the current directory, etwtrace-<pid>.etwtrace), source ('auto':
    perf events, or CPU-clock timers where perf events are not permitted; 'perf'; 'timer'),
    signal (the real-time signal to use; default: the first free one from SIGRTMIN+4),
    native (False: Python frames only, no native unwinding).
    """

    _mode = "sampler"

    def __init__(self, rate=None, clock=None, trace_path=None, source=None, signal=None, native=None):
        options = {k: v for k, v in (("rate", rate), ("clock", clock), ("trace_path", trace_path),
                                     ("source", source), ("signal", signal), ("native", native))
                   if v is not None}
        super().__init__(**options)

    @property
    def trace_path(self):
        """The trace file being written (None when not enabled)."""
        return self._module._sampler_trace_path()


def enable_if(enable_var, type_var):
    """Enable tracing at interpreter start-up (called from etwtrace.pth).

    Tracing starts when `enable_var` is empty/None or the variable it names is set to a value
    not starting with 0, n or f. The mode comes from the variable named by `type_var`:
    'stack' (default), 'instrument'/'instrumented' or 'sampler'. The launcher (`python -m etwtrace`, the
    `etwtrace` script) is never traced from here: it traces its program itself. A problem never
    stops the program: it gets one warning line and runs untraced.
    """
    global enable_if, _automatic_tracer
    enable_if = lambda *a: None  # noqa: E731 - only the first call counts

    import os
    import sys

    if enable_var and os.getenv(enable_var, "0").lower()[:1] in ("0", "n", "f", ""):
        return
    from ._argv import runs_the_launcher

    if runs_the_launcher():
        return
    trace_type = os.getenv(type_var, "").lower() if type_var else ""
    tracer_class = _TRACER_CLASSES.get(trace_type or "stack")
    if tracer_class is None:
        print(f"etwtrace: warning: {type_var}={os.getenv(type_var)!r} is not a tracing mode "
              f"(use stack, instrumented or sampler); running untraced", file=sys.stderr)
        return
    tracer = tracer_class()
    try:
        tracer.enable()
    except (TracingError, RuntimeError) as ex:
        print(f"etwtrace: warning: {ex}; running untraced", file=sys.stderr)
        return
    _automatic_tracer = tracer


def read(path, pid=None, thread_id=None, names=None):
    """Yields the events of a capture, a trace file or a directory of traces in timestamp order.

    pid, thread_id: keep only events of these processes / kernel thread ids (one or a set).
    names: keep only events with these names (e.g. {"PythonFunctionPush", "PythonFunctionPop"}).
    A file cut short (a process killed with SIGKILL) is read up to its last complete record;
    lost events, if any were ever counted, are reported with a RuntimeWarning.
    """
    # Imported here: etwtrace.pth imports this package at every interpreter's start-up.
    from ._read import read as read_events

    return read_events(path, pid=pid, thread_id=thread_id, names=names)


_TRACER_CLASSES = {"stack": StackSamplingTracer, "instrument": InstrumentedTracer,
                   "instrumented": InstrumentedTracer, "sampler": SamplingTracer}
# The tracer etwtrace.pth started, if any: the launcher replaces it with its own.
_automatic_tracer = None


def _stop_automatic_tracing():
    """Disable the tracer etwtrace.pth started (for a launcher run in a way it could not see)."""
    global _automatic_tracer
    if _automatic_tracer is not None:
        _automatic_tracer.disable()
        _automatic_tracer = None


def is_active():
    """Returns True if tracing is active."""
    return _tracer is not None


def _warn_inactive():
    import warnings

    warnings.warn("Unable to mark when global tracer is not enabled", RuntimeWarning, stacklevel=3)


def mark(name):
    """Emits a mark event with the provided text."""
    if _tracer is not None:
        _tracer.mark(name)
    else:
        _warn_inactive()


class _NullRange:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def mark_range(name):
    """Context manager to emit start/stop mark events with the provided text."""
    if _tracer is not None:
        return _tracer.mark_range(name)
    _warn_inactive()
    return _NullRange()


def _mark_stack(mark):
    """Forces a stack sample to be captured here (used by tests)."""
    if _tracer is not None:
        return _tracer._mark_stack(mark)
    _warn_inactive()


_TEMP_CONTENT_DIR = None

PROFILE_FILE = "python-perf.ini"
STACKTAGS_FILE = "python.stacktags"


def _get_content_path(name, allow_direct=True):
    """Path of a shipped data file; copied to a private temp dir if the package is zipped."""
    global _TEMP_CONTENT_DIR
    import importlib.resources
    import os
    import tempfile
    from pathlib import Path

    resource = importlib.resources.files(__name__) / "profiles" / name
    if allow_direct and Path(str(resource)).is_file():
        return str(resource)
    data = resource.read_bytes()
    if _TEMP_CONTENT_DIR is None:
        _TEMP_CONTENT_DIR = tempfile.mkdtemp(prefix="etwtrace-")
    dest = os.path.join(_TEMP_CONTENT_DIR, name)
    # mkdtemp made a private 0700 directory, so nobody can plant a link here.
    with open(dest, "wb") as f_out:
        f_out.write(data)
    return dest


def get_profile_path():
    """Returns the path to the shipped perf recording-profile file."""
    return _get_content_path(PROFILE_FILE)


def get_stacktags_path():
    """Returns the path to the shipped stack-tags file."""
    return _get_content_path(STACKTAGS_FILE)
