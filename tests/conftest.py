"""Shared pytest configuration.

Tests under tests/system/ need a working `perf` and are marked `perf` automatically (the
sanitizer run deselects them). A test there may skip when perf cannot work on the machine,
with a reason a user would accept; with ETWTRACE_REQUIRE_PERF=1 (set by CI) such a skip is
turned into a failure, because on our machines perf must work.
"""

import os
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def python():
    """The interpreter running the tests (each CPython gets its own pytest run)."""
    return sys.executable


@pytest.fixture
def scripts():
    return SCRIPTS
