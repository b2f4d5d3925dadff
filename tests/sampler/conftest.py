"""Helpers for the sampler's tests: run a program under `python -m etwtrace --sampler` and read
what it wrote."""

import os
import subprocess
import sys
import textwrap

import pytest


class Run:
    def __init__(self, proc, trace_dir):
        self.proc = proc
        self.trace_dir = trace_dir

    @property
    def traces(self):
        return sorted(os.path.join(self.trace_dir, n) for n in os.listdir(self.trace_dir) if n.endswith(".etwtrace"))

    def events(self, name="SampledProfile", path=None):
        import etwtrace

        return [e for e in etwtrace.read(path or self.trace_dir) if e.name == name]


@pytest.fixture
def run_sampled(tmp_path):
    """run_sampled(source, *launcher_options, env=None) -> Run (the program's exit is checked by the test)."""

    def run(source, *options, env=None, api=False, timeout=120):
        script = tmp_path / "app.py"
        script.write_text(textwrap.dedent(source))
        trace_dir = tmp_path / "traces"
        trace_dir.mkdir(exist_ok=True)
        environment = dict(os.environ, ETWTRACE_TRACE_DIR=str(trace_dir), **(env or {}))
        if api:
            command = [sys.executable, str(script)]
        else:
            command = [sys.executable, "-m", "etwtrace", "--sampler", "--quiet", *options, "--", str(script)]
        proc = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path,
                              timeout=timeout)
        return Run(proc, str(trace_dir))

    return run
