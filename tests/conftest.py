"""Shared pytest configuration.

Tests under tests/system/ need a working `perf` and are marked `perf` automatically (the
sanitizer run deselects them). A test there may skip when perf cannot work on the machine,
with a reason a user would accept; with ETWTRACE_REQUIRE_PERF=1 (set by CI) such a skip is
turned into a failure, because on our machines perf must work.
"""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

# A suite started in the background by a shell without job control (`cmd &`, nohup) inherits
# SIGINT ignored, and so would every program the tests run, traced or not: the tests of Ctrl-C
# endings would then test the shell. Programs get the default disposition, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TESTS = Path(__file__).resolve().parent
SCRIPTS = TESTS / "scripts"


def pytest_configure(config):
    config.addinivalue_line("markers", "perf: needs a working perf (tests/system)")


def pytest_collection_modifyitems(config, items):
    system = TESTS / "system"
    for item in items:
        if system in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.perf)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("ETWTRACE_REQUIRE_PERF") and item.get_closest_marker("perf"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but ETWTRACE_REQUIRE_PERF is set (perf must work here): {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def keep_symbol_files_of_test_programs_out_of_tmp(tmp_path_factory):
    """Keeps the jitdumps and perf maps of the programs the suite traces out of /tmp.

    Outside a capture, stack mode leaves jit-<pid>.dump and /tmp/perf-<pid>.map for the user's
    own `perf inject` / `perf report` (as CPython's -X perf does). The suite starts hundreds of
    such programs; left in the shared /tmp, the files pile up, and a later process whose pid is
    reused finds a stale file under its name. So jitdumps go to a session directory (tests may
    point JITDUMPDIR elsewhere under pytest's temporary directory), and at the end the perf map
    of each process that wrote a jitdump there is removed: exactly our programs' files.
    """
    started = time.time()
    base = tmp_path_factory.getbasetemp()
    session_jit_dir = tmp_path_factory.mktemp("jitdumps")
    previous = os.environ.get("JITDUMPDIR")
    os.environ["JITDUMPDIR"] = str(session_jit_dir)
    yield
    if previous is None:
        os.environ.pop("JITDUMPDIR", None)
    else:
        os.environ["JITDUMPDIR"] = previous
    for jitdump in base.rglob("jit-*.dump"):
        perf_map = Path(f"/tmp/perf-{jitdump.name[4:-5]}.map")
        try:
            if perf_map.lstat().st_mtime >= started - 1:
                perf_map.unlink()
        except OSError:
            continue


@pytest.fixture
def python():
    """The interpreter running the tests (each CPython gets its own pytest run)."""
    return sys.executable


@pytest.fixture
def scripts():
    return SCRIPTS
