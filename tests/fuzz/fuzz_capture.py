"""atheris fuzz target for the capture reader (src/etwtrace/_read/): one input is a capture
directory - its manifest.json, its events.jsonl.gz (the symbolized perf events perf_data.py
parses) and a jitdump in jit/ - laid out in a scratch directory and read with etwtrace.read().

Every input must end in events (with RuntimeWarnings for what is damaged) or in one ReadError
saying what is wrong; any other exception is a crash. The events file's lines are gzipped by
the harness (so the fuzzer mutates the JSON lines perf_data.py sees), unless the input's first
byte says to write its bytes as they are (the gzip layer's own errors).

Usage (tests/fuzz/run_capture.sh runs it):
    python tests/fuzz/fuzz_capture.py [-runs=N | -max_total_time=S] CORPUS_DIR [SEEDS_DIR]
    python tests/fuzz/fuzz_capture.py --make-seeds DIR   (writes the seed inputs)
"""

import gzip
import json
import os
import struct
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["etwtrace"]):
    import etwtrace
    import etwtrace._bundle
    import etwtrace._read
    import etwtrace._read.capture
    import etwtrace._read.jitdump
    import etwtrace._read.perf_data
    from etwtrace._errors import ReadError

# The capture directory each input is laid out in (run_capture.sh names one inside its own
# scratch directory, which it removes).
SCRATCH = os.environ.get("FUZZ_SCRATCH") or tempfile.mkdtemp(prefix="etwtrace-fuzz-capture-")
os.makedirs(SCRATCH, exist_ok=True)
SEPARATOR = b"\n--8<--\n"  # between the input's three parts


def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def lay_out(data):
    """The capture directory for one input: flags byte, then manifest, events, jitdump."""
    flags = data[0] if data else 0
    parts = data[1:].split(SEPARATOR, 2) + [b"", b""]
    manifest, events, jitdump = parts[0], parts[1], parts[2]
    os.makedirs(os.path.join(SCRATCH, "jit"), exist_ok=True)
    write(os.path.join(SCRATCH, "manifest.json"), manifest)
    events_path = os.path.join(SCRATCH, "events.jsonl.gz")
    if flags & 1:
        write(events_path, events)
    elif flags & 2:
        try:
            os.unlink(events_path)
        except FileNotFoundError:
            pass
    else:
        write(events_path, gzip.compress(events, compresslevel=1, mtime=0))
    write(os.path.join(SCRATCH, "jit", "jit-1.dump"), jitdump)


def TestOneInput(data):
    lay_out(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            for event in etwtrace.read(SCRATCH):
                str(event)  # the text form walks every field and frame
        except ReadError as ex:
            message = str(ex)
            assert message and "\n" not in message, repr(message)


def make_seeds(directory):
    """Seeds from the real layouts: a finished capture's manifest, events and a jitdump."""
    os.makedirs(directory, exist_ok=True)
    manifest = json.dumps({"format": "etwtrace-capture", "version": 1, "complete": True,
                           "perf": {"lost_chunks": 0, "lost_samples": 0, "samples": 2}}).encode()
    lines = [
        {"format": "etwtrace-events", "version": 1},
        {"m": [0, "/usr/bin/python3.11"]},
        {"y": [0, 4198400, "main", 0]},
        {"y": [1, 140000000000, None, 0]},
        {"k": [0, [1, 0]]},
        {"e": "cpu-clock", "p": 1, "t": 1, "ts": 1000, "c": 0, "f": {"period": 1}, "k": 0},
        {"e": "sdt_etwtrace:function", "p": 1, "t": 1, "ts": 1100, "c": 0,
         "f": {"FunctionID": 1, "BeginAddress": 140000000000, "EndAddress": 140000000064, "LineNumber": 3,
               "SourceFile": "a.py", "Name": "f", "IsPythonCode": 1}, "k": -1},
        {"e": "sched:sched_switch", "p": 1, "t": 1, "ts": 1200, "c": 1,
         "f": {"prev_pid": 1, "next_pid": 0, "prev_state": 1, "prev_prio": 120, "next_prio": 120,
               "prev_comm": "python", "next_comm": "swapper"}, "k": 0},
        {"end": {"events": 3}},
    ]
    events = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    name = b"py::f:a.py\0"
    load = struct.pack("<IIQQQQ", 1, 1, 140000000000, 140000000000, 64, 1) + name
    debug = struct.pack("<QQQii", 140000000000, 1, 140000000000, 3, 0) + b"a.py\0"
    jitdump = (struct.pack("<IIIIIIQQ", 0x4A695444, 1, 40, 62, 0, 1, 0, 0)
               + struct.pack("<IIQ", 2, 16 + len(debug), 900) + debug
               + struct.pack("<IIQ", 0, 16 + len(load), 1000) + load)
    seeds = {
        "whole": b"\0" + manifest + SEPARATOR + events + SEPARATOR + jitdump,
        "raw-events": b"\1" + manifest + SEPARATOR + gzip.compress(events, mtime=0) + SEPARATOR + jitdump,
        "no-events": b"\2" + manifest.replace(b'"complete": true', b'"complete": false') + SEPARATOR + SEPARATOR + jitdump,
        "cut-short": b"\0" + manifest + SEPARATOR + events[: len(events) // 2] + SEPARATOR + jitdump[:70],
    }
    for name, data in seeds.items():
        write(os.path.join(directory, name), data)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-seeds"]:
        make_seeds(sys.argv[2])
        sys.exit(0)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
