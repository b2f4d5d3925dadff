"""Runs the target program under a tracer exactly as `python script.py` / `python -m mod` would.

The target sees the sys.argv, sys.path[0] and __main__ it would see if run directly; its exit
status passes through, and an uncaught exception prints the traceback an untraced run prints
(without the launcher's own frames).
"""

import os
import sys

from .._errors import TracingError, UsageError


def _trim_traceback(tb, target_files):
    """Drop the launcher's and runpy's leading frames so the traceback starts at the target."""
    first = tb
    while first is not None:
        if first.tb_frame.f_code.co_filename in target_files:
            return first
        first = first.tb_next
    # No frame from the target itself (e.g. a SyntaxError while compiling it): drop every
    # frame that belongs to etwtrace or runpy.
    first = tb
    while first is not None and _is_launcher_frame(first.tb_frame.f_code.co_filename):
        first = first.tb_next
    return first


def _is_launcher_frame(filename):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return filename.startswith(here) or os.path.basename(filename) == "runpy.py" or filename == "<frozen runpy>"


def _report_uncaught(exc):
    """Print an uncaught exception as the interpreter would, then exit like it would."""
    import traceback

    exc.__traceback__ = _trim_traceback(exc.__traceback__, _target_files)
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except Exception:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    if isinstance(exc, KeyboardInterrupt):
        # CPython ends an interrupted program by re-raising SIGINT, so the parent sees it.
        import atexit
        import signal

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return 1


_target_files = set()


def _run_script(script):
    """Run a script file as `python script.py` does: a fresh __main__ module whose __file__ and
    code filename are absolute (3.9+), while sys.argv[0] stays as the user typed it
    (runpy.run_path would rewrite it)."""
    import builtins
    import importlib.machinery
    import io
    import types

    path = os.path.abspath(script)
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __annotations__={},
        __file__=path,
        __builtins__=builtins,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __package__=None,
        __spec__=None,
    )
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _is_zip(path):
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _run_code(code):
    """Run `-c code` as `python -c` does: a fresh __main__, file name "<string>"."""
    import builtins
    import importlib.machinery
    import types

    compiled = compile(code, "<string>", "exec", dont_inherit=True)
    if sys.version_info >= (3, 13):
        # python -c shows the code's lines in tracebacks from 3.13 on.
        import linecache

        linecache.cache["<string>"] = (len(code), None, code.splitlines(True), "<string>")
    main = types.ModuleType("__main__")
    main.__dict__.update(__annotations__={}, __builtins__=builtins, __loader__=importlib.machinery.BuiltinImporter,
                         __package__=None, __spec__=None)
    sys.modules["__main__"] = main
    exec(compiled, main.__dict__)


def _files_written(tracer):
    """The files the active tracer writes, for the one line that says where its output goes."""
    from .. import _etwtrace

    if tracer._mode == "instrumented":
        return [os.path.abspath(_etwtrace._instrumented_trace_path())]
    if tracer._mode == "sampler":
        return [os.path.abspath(_etwtrace._sampler_trace_path())]
    pid = os.getpid()
    return [f"/tmp/perf-{pid}.map", os.path.join(os.environ.get("JITDUMPDIR") or "/tmp", f"jit-{pid}.dump")]


def run_target(argv, tracer, capture_path=None, capture_options=None, quiet=False):
    """Run `argv` (script.py args..., -m module args..., -c code args...) under `tracer`;
    returns the exit status."""
    import runpy

    target_argv = list(argv)

    if argv[0] == "-m":
        if len(argv) < 2:
            raise UsageError("-m needs a module name, for example: -- -m http.server 8000")
        module = argv[1]
        sys.argv[:] = [argv[0], *argv[2:]]
        sys.path[0:1] = [os.getcwd()] if sys.path else [os.getcwd()]

        def run():
            import importlib.util

            spec = importlib.util.find_spec(module)
            if spec is not None and spec.origin:
                _target_files.add(spec.origin)
            # Like `python -m`: sys.argv[0] becomes the module's file.
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    elif argv[0] == "-c":
        if len(argv) < 2:
            raise UsageError("-c needs the code to run, for example: -- -c 'import app; app.main()'")
        code = argv[1]
        sys.argv[:] = ["-c", *argv[2:]]
        sys.path[0:1] = [""] if sys.path else [""]
        _target_files.add("<string>")

        def run():
            _run_code(code)
    else:
        script = argv[0]
        if not os.path.exists(script):
            print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: "
                  f"[Errno 2] No such file or directory", file=sys.stderr)
            return 2
        sys.argv[:] = list(argv)
        script_dir = os.path.dirname(os.path.abspath(script))
        if sys.path:
            sys.path[0] = script_dir
        else:
            sys.path.insert(0, script_dir)
        _target_files.add(script)
        _target_files.add(os.path.abspath(script))

        if os.path.isdir(script) or _is_zip(script):
            # A directory with __main__.py or a zip application: runpy does what python does.
            def run():
                runpy.run_path(script, init_globals={"__annotations__": {}}, run_name="__main__")
        else:
            def run():
                _run_script(script)

    # --capture: this process becomes the supervisor and runs the target in a child recorded by
    # perf (see _capture). The child (marked by its environment) runs the target below.
    if capture_path is not None:
        from .. import _capture

        return _capture.run(capture_path, target_argv, tracer, **(capture_options or {}))
    from .. import _capture

    in_capture = _capture.in_capture()
    if in_capture:
        _capture.child_setup()
    import etwtrace

    # A launcher started in a way etwtrace.pth could not recognise (runpy, say) was traced from
    # start-up: the program is traced once, by the tracer the launcher was asked for.
    etwtrace._stop_automatic_tracing()
    if tracer._mode == "sampler":
        # The sampler sees every frame running, the launcher's too: runpy's frames (python -m
        # etwtrace) sit below the target's <module>, where an untraced run has none.
        tracer.ignore(runpy.__file__, "<frozen runpy>")
    try:
        tracer.enable()
    except RuntimeError as ex:  # another eval-frame hook (-X perf, a debugger): not ours to replace
        raise TracingError(str(ex).replace("etwtrace: ", "", 1)) from None
    if not quiet and not in_capture:
        print(f"etwtrace: {tracer._mode} mode writes {' and '.join(_files_written(tracer))}",
              file=sys.stderr, flush=True)
    try:
        run()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: B902 - reported exactly as the interpreter would
        return _report_uncaught(exc)
    finally:
        tracer.disable()
    return 0
