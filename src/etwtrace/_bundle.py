"""The capture bundle's layout and manifest: one definition for its writer and its readers.

The Python counterpart of format/trace_format.h for captures (prose spec: docs/capture.md).
`python -m etwtrace --capture PATH` writes a directory:

    PATH/manifest.json    what was recorded and how it ended (written first, completed last)
    PATH/events.jsonl.gz  perf's events, unwound and symbolized at the end of the capture:
                          interned modules, frames and stacks, then events naming a stack id
                          (EVENTS_FORMAT below); what read() reads, with no perf and no binaries
    PATH/perf.data        perf's recording after `perf inject --jit` (perf.raw before that);
                          kept only on request (--keep-perf-data, profile key keep_perf_data)
    PATH/jit/             the jitdumps (jit-<pid>.dump) and the jitted-<pid>-<n>.so objects
    PATH/maps/            the /tmp/perf-<pid>.map files of the recorded processes
    PATH/traces/          instrumented trace files, one per process
    PATH/buildid/         perf's build-id cache: the binaries the samples resolve against
                          (with perf.data only)
"""

import json
import os

FORMAT = "etwtrace-capture"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
PERF_DATA = "perf.data"
PERF_RAW = "perf.raw"  # perf record's output, before perf inject --jit
PERF_LOG = "perf-record.log"
EVENTS = "events.jsonl.gz"  # the symbolized events (see EVENTS_FORMAT)
STARTED = "started"  # written by the traced child when the target starts
JIT_DIR = "jit"
MAPS_DIR = "maps"
TRACES_DIR = "traces"
BUILDID_DIR = "buildid"

TRACE_SUFFIX = ".etwtrace"

# events.jsonl.gz: gzip-compressed JSON lines, written once by the supervisor from `perf script`
# (our _read/perf_script.py prints every line but the first and the last), read by
# _read/perf_data.py. Version 2:
#
#   {"format": "etwtrace-events", "version": 2}                 first line
#   {"m": [module id, "path of the binary"]}                    before the module's first use
#   {"y": [frame id, address, "symbol" or null, module id]}     before the frame's first use
#   {"k": [stack id, [frame id, ...]]}                          a stack, leaf first
#   {"n": [layout id, "event name", ["field", ...]]}            an event layout, before its use
#   {"b": [[layout id, pid, tid, ns, cpu, stack id, field value, ...], ...]}
#                                                               a batch of events (up to 500),
#                                                               in time order; stack id -1: none
#   {"end": {"events": N}}                                      last line: the file is whole
#
# Version 1 (still read) had one line per event instead of "n" and "b":
#   {"e": name, "p": pid, "t": tid, "ts": ns, "c": cpu, "f": {field: value}, "k": stack id}
#
# Ids count from 0 in order of appearance. A file without its "end" line was cut short: the
# events before the cut are read, with a warning.
EVENTS_FORMAT = "etwtrace-events"
EVENTS_VERSION = 2


class Bundle:
    """The paths inside one capture directory."""

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    @property
    def manifest(self):
        return self / MANIFEST

    @property
    def perf_data(self):
        return self / PERF_DATA

    @property
    def perf_raw(self):
        return self / PERF_RAW

    @property
    def events(self):
        return self / EVENTS

    @property
    def perf_log(self):
        return self / PERF_LOG

    @property
    def jit_dir(self):
        return self / JIT_DIR

    @property
    def maps_dir(self):
        return self / MAPS_DIR

    @property
    def traces_dir(self):
        return self / TRACES_DIR

    @property
    def buildid_dir(self):
        return self / BUILDID_DIR


def load_manifest(path):
    """The manifest of the capture directory `path`, or None if it holds no etwtrace capture.

    Raises ValueError (with the reason) for a manifest that exists but cannot be used.
    """
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as ex:
        raise ValueError(f"cannot read {MANIFEST} ({ex.strerror})") from None
    try:
        manifest = json.loads(text)
    except ValueError:
        raise ValueError(f"{MANIFEST} is not valid JSON (damaged or cut short)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def has_perf_events(path, manifest=None):
    """True if the capture at `path` holds perf's events in any form read() reads: the
    symbolized events file, perf.data, or the raw recording of an unfinished capture."""
    bundle = Bundle(path)
    if manifest is not None and not manifest.get("perf"):
        return False
    return any(os.path.exists(p) for p in (bundle.events, bundle.perf_data, bundle.perf_raw))


def is_capture(path):
    """True if `path` is a directory holding an etwtrace capture manifest."""
    try:
        return load_manifest(path) is not None
    except ValueError:
        return False


def write_manifest(path, manifest):
    """Write (or replace) the manifest atomically, so a reader never sees half of it."""
    tmp = os.path.join(path, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(path, MANIFEST))
