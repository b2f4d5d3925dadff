"""Reading what etwtrace recorded: `read(path)` is the one front door.

    events.py      the one event model (Event, Frame) and its text form
    trace_file.py  instrumented trace files, streamed by the native reader
    capture.py     capture bundles: perf data, jitdumps and trace files merged
    perf_data.py   perf.data through `perf script` (perf_script.py runs inside perf)
    jitdump.py     jitdump files
"""

import heapq
import os
import warnings

from .. import _bundle
from .._errors import ReadError
from .events import Event, Frame, format_event
from .trace_file import TraceFile, trace_files

__all__ = ["read", "Event", "Frame", "TraceFile", "format_event"]


def _as_set(value):
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return {value}
    return set(value)


def _warn_integrity(trace):
    """One RuntimeWarning for each way the trace file is partial."""
    info = trace.info
    if info["lost_events"]:
        warnings.warn(f"{trace.path}: {info['lost_events']} events were lost while tracing", RuntimeWarning, stacklevel=4)
    if info["error"]:
        warnings.warn(f"{trace.path}: damaged trace ({info['error']}); the {info['events']} events before "
                      "the damage were read", RuntimeWarning, stacklevel=4)
    elif info["truncated"] or not info["complete"]:
        warnings.warn(f"{trace.path} was cut short (its process was killed, or is still running): "
                      f"{info['events']} events were read, any later ones are missing", RuntimeWarning, stacklevel=4)


def _sources(path, pids, tids, names):
    """The event streams of PATH, each in timestamp order, and whether they are filtered already."""
    if os.path.isdir(path):
        try:
            manifest = _bundle.load_manifest(path)
        except ValueError as ex:
            raise ReadError(f"{path} is a damaged etwtrace capture ({ex})") from None
        if manifest is not None:
            from .capture import read_capture

            return [read_capture(path, manifest, _warn_integrity, names=names)], False
        files = trace_files(path)
        if not files:
            raise ReadError(f"{path} is neither an etwtrace capture (no {_bundle.MANIFEST}) "
                            f"nor a directory of trace files (*{_bundle.TRACE_SUFFIX})")
    elif os.path.exists(path):
        files = [path]
    else:
        raise ReadError(f"{path} does not exist; give a capture directory or a trace file")
    streams = []
    for file in files:
        trace = TraceFile(file)
        if pids is not None and trace.pid not in pids:
            continue
        _warn_integrity(trace)
        streams.append(trace.events(tids, names))
    return streams, True


def read(path, pid=None, thread_id=None, names=None):
    """Yields the events of a capture, a trace file or a directory of traces in timestamp order.

    pid, thread_id: keep only events of these processes / kernel thread ids (one or a set).
    names: keep only events with these names (e.g. {"PythonFunctionPush", "PythonFunctionPop"}).
    A file cut short (a process killed with SIGKILL) is read up to its last complete record;
    lost events, if any were ever counted, are reported with a RuntimeWarning.
    """
    path = os.fspath(path)
    pids, tids, names = _as_set(pid), _as_set(thread_id), _as_set(names)
    streams, filtered = _sources(path, pids, tids, names)
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_timestamp)
    if filtered:  # trace files skip what is not wanted before making the events
        yield from merged
        return
    for event in merged:
        if pids is not None and event.pid not in pids:
            continue
        if tids is not None and event.thread_id not in tids:
            continue
        if names is not None and event.name not in names:
            continue
        yield event


def _timestamp(event):
    return event.timestamp
