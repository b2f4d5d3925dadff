"""The traced child's side of a capture: what the supervisor hands it, and its set-up."""

import os
import sys

# Set for the traced child by the supervisor.
ENV_CAPTURE = "ETWTRACE_CAPTURE_DIR"  # the capture being written (child: where its files go)
ENV_STDERR_FD = "ETWTRACE_CAPTURE_STDERR_FD"  # the user's stderr (perf's own goes to a log)
ENV_PGID = "ETWTRACE_CAPTURE_PGID"  # the launcher's process group, which the target rejoins
# Where an instrumented tracer writes its trace files (one per process); inherited by the
# target's child processes so that traced children land in the same capture.
ENV_TRACE_DIR = "ETWTRACE_TRACE_DIR"


def in_capture():
    """True in the traced child of a capture (before child_setup() consumes the variables)."""
    return bool(os.environ.get(ENV_CAPTURE))


def child_setup():
    """Called by the launcher in the traced child: restore stderr, note that the target starts."""
    import subprocess

    from .. import _bundle

    capture = os.environ.pop(ENV_CAPTURE, None)
    fd = os.environ.pop(ENV_STDERR_FD, None)
    pgid = os.environ.pop(ENV_PGID, None)
    if pgid:
        # Back into the launcher's (the terminal's) process group: Ctrl-C reaches the target
        # as it would untraced, while perf, in a group of its own, records until the end.
        try:
            os.setpgid(0, int(pgid))
        except (OSError, ValueError):
            pass
    if fd:
        try:
            os.dup2(int(fd), 2)
            os.close(int(fd))
        except (OSError, ValueError):
            pass
    # perf 6.1 loses the stacks of a process started with vfork() and exec (its DWARF unwinder
    # keeps the parent's address space), and subprocess uses vfork (or posix_spawn, which
    # vforks too) where it can: make this process's subprocesses fork, as before 3.10.
    for flag in ("_USE_VFORK", "_USE_POSIX_SPAWN"):
        if getattr(subprocess, flag, False):
            setattr(subprocess, flag, False)
    if capture:
        try:
            with open(os.path.join(capture, _bundle.STARTED), "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError:
            pass


def interpreter_flags():
    """The options this interpreter was started with (-X ..., -I, -u ...), for the re-run.

    Taken from the command line itself up to `-m etwtrace` or the console script, so every
    option passes, -X perf_jit included.
    """
    import subprocess

    from .._argv import original_argv, split_interpreter_options

    argv = original_argv()
    if not argv:
        return list(subprocess._args_from_interpreter_flags())
    return split_interpreter_options(argv[1:])[0]


def child_command(mode, argv, options=None):
    """The command line that runs the target under the launcher in `mode` ("stack", ...);
    `options`: the tracer's options (the sampler's rate and clock, or an instrumented tracer's
    samples options)."""
    option = {"instrumented": "--instrumented", "sampler": "--sampler"}.get(mode, "--stack")
    options = options or {}
    extra = []
    if mode == "instrumented" and options.get("samples"):  # InstrumentedTracer(samples=True)
        extra.append("--sampler")
        options = {key[len("sample_"):]: value for key, value in options.items() if key.startswith("sample_")}
    if mode == "sampler" or extra:
        if options.get("rate") is not None:
            extra.append(f"--sample-rate={int(options['rate'])}")
        if options.get("clock") == "wall":
            extra.append("--wall-clock")
    return [sys.executable, *interpreter_flags(), "-m", "etwtrace", option, *extra, "--", *argv]
