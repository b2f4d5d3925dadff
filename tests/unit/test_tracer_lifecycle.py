"""Enabling, disabling and the one-active-tracer rule, in a subprocess per case so that a
tracer never outlives its test."""

import subprocess
import sys
import textwrap

import pytest


def run_py(code):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    return proc


@pytest.mark.parametrize("first", ["StackSamplingTracer", "InstrumentedTracer"])
@pytest.mark.parametrize("second", ["StackSamplingTracer", "InstrumentedTracer"])
def test_only_one_tracer_at_a_time(tmp_path, first, second):
    proc = run_py(f"""
        import os, etwtrace
        os.chdir({str(tmp_path)!r})
        t1 = etwtrace.{first}()
        t1.enable()
        assert etwtrace.is_active()
        try:
            etwtrace.{second}().enable()
        except RuntimeError as ex:
            print("refused:", ex)
        else:
            raise SystemExit("second tracer was enabled")
        t1.disable()
        assert not etwtrace.is_active()
        with etwtrace.{second}():
            assert etwtrace.is_active()
        assert not etwtrace.is_active()
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "refused: another etwtrace tracer" in proc.stdout
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("cls", ["StackSamplingTracer", "InstrumentedTracer"])
def test_marks_while_active_do_not_warn(tmp_path, cls):
    proc = run_py(f"""
        import os, warnings, etwtrace
        os.chdir({str(tmp_path)!r})
        warnings.simplefilter("error")
        with etwtrace.{cls}() as t:
            etwtrace.mark("m")
            with etwtrace.mark_range("r"):
                etwtrace._mark_stack("s")
            t.mark("m2")
            with t.mark_range("r2"):
                pass
            t._mark_stack("s2")
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("cls", ["StackSamplingTracer", "InstrumentedTracer"])
def test_enable_disable_repeatedly_with_threads(tmp_path, cls):
    proc = run_py(f"""
        import os, threading, etwtrace
        os.chdir({str(tmp_path)!r})
        stop = False
        def spin():
            def f(n):
                return n if n < 2 else f(n - 1) + f(n - 2)
            while not stop:
                f(12)
        threads = [threading.Thread(target=spin) for _ in range(3)]
        for t in threads: t.start()
        for _ in range(20):
            tracer = etwtrace.{cls}()
            tracer.enable()
            sum(range(1000))
            tracer.disable()
        stop = True
        for t in threads: t.join()
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
