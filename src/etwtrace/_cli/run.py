"""Runs the target program under a tracer exactly as `python script.py` / `python -m mod` would.

The target sees the sys.argv, sys.path[0] and __main__ it would see if run directly; its exit
status passes through. Its code runs through the native `_run_as_main` (python/main_context.h):
no launcher frame under it (traceback.extract_stack(), inspect.stack(), sys._getframe(),
tracebacks) and a fresh thread's recursion depth, so an uncaught exception comes back with the
traceback an untraced run prints, and is printed the same way.
"""

import os
import sys

from .._errors import TracingError, UsageError


def _report_uncaught(exc):
    """Print an uncaught exception as the interpreter would, then exit like it would."""
    import traceback

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


def _fresh_main(**entries):
    """A new __main__ module, in sys.modules, holding what the interpreter's own has."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(__annotations__={}, __builtins__=builtins, **entries)
    sys.modules["__main__"] = main
    return main


def _script_main(script):
    """What `python script.py` runs: the compiled file and a fresh __main__ whose __file__ and
    code filename are absolute (3.9+), while sys.argv[0] stays as the user typed it."""
    import importlib.machinery
    import io

    path = os.path.abspath(script)
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = _fresh_main(__file__=path, __cached__=None,
                       __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    return code, main.__dict__


def _is_zip(path):
    # As python itself decides: by zipimport (imported at start-up), not zipfile, whose
    # imports (pathlib, shutil, bz2, lzma...) every launch would otherwise carry.
    import zipimport

    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def _string_main(code):
    """What `python -c code` runs: the compiled string (file name "<string>"), a fresh __main__."""
    import importlib.machinery

    compiled = compile(code, "<string>", "exec", dont_inherit=True)
    if sys.version_info >= (3, 13):
        # python -c shows the code's lines in tracebacks from 3.13 on.
        import linecache

        linecache.cache["<string>"] = (len(code), None, code.splitlines(True), "<string>")
    main = _fresh_main(__loader__=importlib.machinery.BuiltinImporter)
    return compiled, main.__dict__


def _runpy_main(module, alter_argv):
    """What `python -m module` (alter_argv) or `python dir_or_zip` (module "__main__") runs:
    runpy._run_module_as_main, the function the interpreter calls, in a fresh __main__."""
    import importlib.machinery
    import runpy

    _fresh_main(__loader__=importlib.machinery.BuiltinImporter)
    return runpy._run_module_as_main, (module, alter_argv)


def _files_written(tracer):
    """The files the active tracer writes, for the one line that says where its output goes."""
    from .. import _etwtrace

    if tracer._mode == "instrumented":
        samples = _etwtrace._sampler_trace_path()  # InstrumentedTracer(samples=True)
        return [os.path.abspath(_etwtrace._instrumented_trace_path())] + ([os.path.abspath(samples)] if samples else [])
    if tracer._mode == "sampler":
        return [os.path.abspath(_etwtrace._sampler_trace_path())]
    pid = os.getpid()
    return [f"/tmp/perf-{pid}.map", os.path.join(os.environ.get("JITDUMPDIR") or "/tmp", f"jit-{pid}.dump")]


def run_target(argv, tracer, capture_path=None, capture_options=None, quiet=False):
    """Run `argv` (script.py args..., -m module args..., -c code args...) under `tracer`;
    returns the exit status."""
    target_argv = list(argv)

    if argv[0] == "-m":
        if len(argv) < 2:
            raise UsageError("-m needs a module name, for example: -- -m http.server 8000")
        module = argv[1]
        sys.argv[:] = [argv[0], *argv[2:]]
        sys.path[0:1] = [os.getcwd()] if sys.path else [os.getcwd()]

        def prepare():
            return _runpy_main(module, True)  # sys.argv[0] becomes the module's file
    elif argv[0] == "-c":
        if len(argv) < 2:
            raise UsageError("-c needs the code to run, for example: -- -c 'import app; app.main()'")
        code = argv[1]
        sys.argv[:] = ["-c", *argv[2:]]
        sys.path[0:1] = [""] if sys.path else [""]

        def prepare():
            return _string_main(code)
    else:
        script = argv[0]
        if not os.path.exists(script):
            print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: "
                  f"[Errno 2] No such file or directory", file=sys.stderr)
            return 2
        sys.argv[:] = list(argv)
        if os.path.isdir(script) or _is_zip(script):
            # A directory with __main__.py or a zip application: python puts it first on
            # sys.path and runs its __main__ module through runpy.
            path_entry = os.path.abspath(script)

            def prepare():
                return _runpy_main("__main__", False)
        else:
            path_entry = os.path.dirname(os.path.abspath(script))

            def prepare():
                return _script_main(script)
        if sys.path:
            sys.path[0] = path_entry
        else:
            sys.path.insert(0, path_entry)

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
    if tracer._mode == "sampler" or tracer._options.get("samples"):
        # The sampler sees every frame running, the launcher's too: runpy's frames (python -m
        # etwtrace) sit below the target's <module>, where an untraced run has none.
        import runpy

        tracer.ignore(runpy.__file__, "<frozen runpy>")
    try:
        tracer.enable()
    except RuntimeError as ex:  # another eval-frame hook (-X perf, a debugger): not ours to replace
        raise TracingError(str(ex).replace("etwtrace: ", "", 1)) from None
    if not quiet and not in_capture:
        files = _files_written(tracer)
        if len(files) == 2 and tracer._mode == "instrumented":
            what = f"{files[0]} and its samples to {files[1]}"
        else:
            what = " and ".join(files)
        print(f"etwtrace: {tracer._mode} mode writes {what}", file=sys.stderr, flush=True)
    from .. import _etwtrace

    try:
        try:
            target, arg = prepare()
        except SyntaxError as exc:  # python prints a program's SyntaxError with no frame
            exc.__traceback__ = None
            return _report_uncaught(exc)
        exc = _etwtrace._run_as_main(target, arg)
        del target, arg
        if exc is None:
            return 0
        if isinstance(exc, SystemExit):
            raise exc
        return _report_uncaught(exc)
    finally:
        tracer.disable()
