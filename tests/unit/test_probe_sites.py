"""Each etwtrace USDT probe has exactly one site, and the reader takes both namings of its events.

A probe site is an SDT note, and every note is a uprobe a tracer must register (and the kernel
take down again, at ~0.1 s each): the library must hold one note per probe. Captures made by
builds that inlined the probes have one event per call site (`thread`, `thread_1`, ...); the
reader folds those into the probe's event.
"""

import collections

import pytest

from etwtrace._capture import probes as _probes
from etwtrace._capture.preflight import extension_library
from etwtrace._read.perf_data import _event_from_perf
from etwtrace._schema import PROBE_NAMES

NOTES = _probes.read_sdt_notes(extension_library())


@pytest.mark.skipif(not NOTES, reason="the extension was built without <sys/sdt.h> (systemtap-sdt-dev): it has no probes")
def test_every_probe_has_exactly_one_site():
    sites = collections.Counter(note.name for note in NOTES)
    assert sites == {name: 1 for name in PROBE_NAMES}


@pytest.mark.parametrize("name, upstream, opcode", [
    ("etwtrace_42:thread", "PythonThread", "Start"),          # one site per probe
    ("etwtrace_42:thread_5", "PythonThread", "Start"),        # a capture from an inlining build
    ("sdt_etwtrace:function_pop_3", "PythonFunctionPop", "Info"),  # perf probe's naming
    ("etwtrace_42:stack_sample", "PythonStackSample", "Info"),
])
def test_reader_folds_site_suffixes_into_the_probe(name, upstream, opcode):
    event = _event_from_perf(name, 1, 1, 0.0, 0, {"Start": 1}, ())
    assert (event.name, event.opcode) == (upstream, opcode)


def test_reader_ignores_unknown_events_of_the_group():
    assert _event_from_perf("etwtrace_42:not_a_probe_1", 1, 1, 0.0, 0, {}, ()) is None
