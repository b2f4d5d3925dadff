"""etwtrace.read() streams trace files (reader/trace_stream.h, bindings/trace_events.cpp).

Its events are compared with the reference decode of the whole file in memory (_read_trace,
the path read() took before it streamed), event by event and as `dump` prints them; a child
reading a large trace must stay within a fixed memory bound (measured with getrusage, not
timed); files cut short or damaged read up to the damage with the same warnings.
"""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import etwtrace
from etwtrace import _etwtrace
from etwtrace._read import Event, Frame, TraceFile, format_event
from etwtrace._read.events import mark_opcode

MIX = Path(__file__).resolve().parent.parent / "scripts" / "instrumented" / "stream_mix.py"


def write_trace(path, calls):
    proc = subprocess.run([sys.executable, str(MIX), str(path), str(calls)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return write_trace(tmp_path_factory.mktemp("stream") / "mix.etwtrace", 800)


def reference_events(path):
    """The events as the whole-file decode gives them, built the way read() used to."""
    trace = _etwtrace._read_trace(str(path))
    info = _etwtrace._trace_info(trace)
    functions = _etwtrace._trace_functions(trace)
    frames = TraceFile(path)  # only for its Frames (one per function)
    names = {1: "PythonFunctionPush", 2: "PythonFunctionPop", 3: "PythonFunction"}
    for start in range(0, info["events"], 65536):
        for kind, ts, tid, fid, caller, line, mark_kind, detail, node in _etwtrace._trace_events(trace, start, 65536):
            opcode = "Info"
            if kind == 1:
                fields = {"FunctionID": fid, "Caller": caller, "CallerLine": line}
            elif kind == 2:
                fields = {"FunctionID": fid}
            elif kind == 3:
                f = functions[detail]
                fields = {"FunctionID": f[0], "BeginAddress": f[5], "EndAddress": f[6], "LineNumber": f[3],
                          "SourceFile": f[2], "Name": f[1], "IsPythonCode": bool(f[4])}
            elif kind == 4:
                fields = {"Mark": detail}
                opcode = mark_opcode(mark_kind)
            else:
                fields = {"ThreadId": tid}
                opcode = "Start" if kind == 5 else "Stop"
            name = names.get(kind) or ("PythonStackSample" if kind == 4 and mark_kind == 3 else
                                       "PythonMark" if kind == 4 else "PythonThread")
            stack = () if node is None else tuple(frames.frame(i) for i in _etwtrace._trace_stack(trace, node))
            yield Event(name, info["pid"], tid, ts, fields, stack, opcode)


def as_tuple(e):
    return (e.name, e.opcode, e.pid, e.thread_id, e.timestamp, e.fields, e.cpu, e.source,
            [(int(f), f.function_id, f.name) for f in e.stack])


def test_streamed_events_equal_the_whole_file_decode(mixed):
    streamed = etwtrace.read(mixed)
    count = 0
    threads = set()
    for ref in reference_events(mixed):
        e = next(streamed)
        assert isinstance(e, Event)
        assert as_tuple(e) == as_tuple(ref), count
        assert format_event(e, 12345) == format_event(ref, 12345)  # what dump prints
        threads.add(e.thread_id)
        count += 1
    assert next(streamed, None) is None
    assert count > 25_000 and len(threads) == 4
    assert TraceFile(mixed).info["events"] == count


def test_dump_prints_the_reference_lines(mixed, tmp_path):
    out = subprocess.run([sys.executable, "-m", "etwtrace", "dump", str(mixed)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    reference = reference_events(mixed)
    first = next(reference)
    expected = [format_event(first, first.timestamp)] + [format_event(e, first.timestamp) for e in reference]
    assert lines == expected


def test_filters_happen_before_events_are_made(mixed):
    everything = [as_tuple(e) for e in etwtrace.read(mixed)]
    tid = everything[len(everything) // 2][3]
    names = {"PythonMark", "PythonStackSample", "PythonThread"}
    assert [as_tuple(e) for e in etwtrace.read(mixed, thread_id=tid)] == [t for t in everything if t[3] == tid]
    assert [as_tuple(e) for e in etwtrace.read(mixed, names=names)] == [t for t in everything if t[0] in names]
    both = [as_tuple(e) for e in etwtrace.read(mixed, thread_id={tid}, names=["PythonFunctionPop"])]
    assert both == [t for t in everything if t[3] == tid and t[0] == "PythonFunctionPop"] and both
    assert list(etwtrace.read(mixed, pid=everything[0][2] + 1)) == []


def test_stacks_are_shared_and_the_event_api_holds(mixed):
    events = list(etwtrace.read(mixed, names={"PythonFunctionPush"}))
    by_stack = {}
    for e in events:
        by_stack.setdefault(tuple(f.function_id for f in e.stack), []).append(e)
    # One tuple per distinct stack, one Frame per function: repeated stacks cost nothing.
    same = max(by_stack.values(), key=len)
    assert len(same) > 100 and all(e.stack is same[0].stack for e in same)
    frames = {id(f) for e in events for f in e.stack}
    assert len(frames) == len({f.function_id for e in events for f in e.stack})
    e = events[-1]
    assert e["FunctionID"] == e.fields["FunctionID"] == e.stack[0].function_id
    assert "Caller" in e and e.get("nope", 7) == 7 and list(e.keys()) == ["FunctionID", "Caller", "CallerLine"]
    assert e.event_name == e.name and repr(e).startswith("<Event PythonFunctionPush pid=")
    assert e.python_stack is None and e.cpu == -1 and e.source == "trace"
    e.python_stack = [e.stack[0]]
    e.fields["Extra"] = 1
    e.stack = ()
    assert e.python_stack[0] is events[-1].python_stack[0] and e["Extra"] == 1 and e.stack == ()
    copy = pickle.loads(pickle.dumps(e))
    assert as_tuple(copy) == as_tuple(e) and copy.python_stack[0].function_id == e.python_stack[0].function_id
    made = Event("SampledProfile", 1, 2, 3, {"Event": "cpu-clock"}, (Frame(0x10, "f", "/lib.so"),), cpu=1,
                 source="perf")
    assert (made.opcode, made.cpu, made.source, made.python_stack, made.stack[0].symbol) == (
        "Info", 1, "perf", None, "f")
    assert Event("X", 1, 2, 3).fields == {} and Event("X", 1, 2, 3).stack == ()
    with pytest.raises(AttributeError):
        made.not_an_attribute = 1


CHILD = textwrap.dedent("""\
    import resource, sys
    import etwtrace
    from etwtrace._read import TraceFile

    TraceFile(sys.argv[1])  # the native module and the readers imported, a first index made
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = 0
    for e in etwtrace.read(sys.argv[1]):
        n += 1
        if n % 1000 == 0:
            e.stack, e.fields
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(n, before, after)
""")


def test_reading_a_large_trace_takes_bounded_memory(tmp_path):
    """~1.2 M events: the whole-file decode kept ~110 bytes each (130 MB here); the stream
    keeps one chunk per thread, the functions and the distinct stacks."""
    trace = write_trace(tmp_path / "large.etwtrace", 20_000)
    out = subprocess.run([sys.executable, "-c", CHILD, str(trace)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    events, before, after = map(int, out.stdout.split())
    assert events > 1_000_000
    assert after - before < 20 * 1024, f"reading {events:,} events grew the RSS by {(after - before) // 1024} MB"


def read_with_warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = [as_tuple(e) for e in etwtrace.read(path)]
    return events, [str(w.message) for w in caught]


def test_cut_and_damaged_traces_read_up_to_the_damage(mixed, tmp_path):
    data = mixed.read_bytes()
    damaged = bytearray(data)
    middle = len(data) // 2
    damaged[middle:middle + 64] = b"\xff" * 64  # an unknown event tag, or a record size past the end
    cases = {f"cut{i}": data[: len(data) * i // 6 + 7] for i in (3, 5)}
    cases["damaged"] = bytes(damaged)
    for name, content in cases.items():
        path = tmp_path / f"{name}.etwtrace"
        path.write_bytes(content)
        info = _etwtrace._trace_info(_etwtrace._read_trace(str(path)))
        events, messages = read_with_warnings(path)
        assert events == [as_tuple(e) for e in reference_events(path)], name
        assert len(events) == info["events"] and 0 < len(events) < 150_000, name
        if info["error"]:
            expected = [f"{path}: damaged trace ({info['error']}); the {info['events']} events before "
                        "the damage were read"]
        else:
            assert info["truncated"] or not info["complete"], name
            expected = [f"{path} was cut short (its process was killed, or is still running): "
                        f"{info['events']} events were read, any later ones are missing"]
        assert messages == expected, name


def test_not_a_trace_is_one_sentence(tmp_path):
    junk = tmp_path / "junk.etwtrace"
    junk.write_bytes(b"not a trace at all")
    with pytest.raises(etwtrace._errors.ReadError, match="not an etwtrace trace file"):
        list(etwtrace.read(junk))
    os.chmod(junk, 0)
    if os.geteuid() != 0:
        with pytest.raises(etwtrace._errors.ReadError, match="Permission denied"):
            list(etwtrace.read(junk))
