"""The launcher's options: one table, one parser.

Options are Linux-style (`--long`, case-sensitive). Everything after `--` is the program to run
(`script.py args...` or `-m module args...`). An argument the table does not know is collected
and reported once, with the program then not run.
"""

from .._errors import UsageError

HELP_TEXT = """\
Usage: python -m etwtrace [--stack | --instrument | --sampler] [--capture PATH] -- script.py [args...]
       python -m etwtrace [--stack | --instrument | --sampler] [--capture PATH] -- -m module [args...]
       python -m etwtrace [--stack | --instrument | --sampler] [--capture PATH] -- -c code [args...]
       python -m etwtrace [--stack | --instrument] --capture PATH [--capture-profile NAME]
                          [--profile-file FILE] -- script.py [args...]

    Runs a script, module or code with tracing enabled, exactly as `python script.py args...`
    would (same sys.argv, __main__, output and exit status). Says once, on stderr, which files
    the tracer writes (the perf map and jitdump, or the trace file), unless --quiet.

    --stack             Stack sampling (default): every Python function runs through its own
                        native thunk, published in /tmp/perf-<pid>.map and a jitdump file, so
                        `perf record` shows py::<qualname>:<file> frames.
                          python -m etwtrace --stack -- app.py
    --instrument, --instrumented
                        Instrumentation: record entry and exit of every Python and C call.
                          python -m etwtrace --instrument -- -m mypkg.cli --verbose
    --sampler           In-process sampling: every thread gets a signal per period of its
                        CPU time and its Python stack (with line numbers) goes into a trace
                        file; no hook runs between samples (docs/sampler.md). No perf needed.
                          python -m etwtrace --sampler -- app.py
                        With --instrument, both in one run, on one clock: the samples go
                        to a companion file (etwtrace-<pid>.samples.etwtrace) and `report`
                        of the directory shows both.
                          python -m etwtrace --instrument --sampler --sample-rate 1000 -- app.py
    --sample-rate N     Sampler: samples per second of each thread's CPU time (default 100).
                          python -m etwtrace --sampler --sample-rate 1000 -- app.py
    --wall-clock        Sampler: sample every thread per period of wall time, so time spent
                        sleeping, waiting and blocked shows too.
                          python -m etwtrace --sampler --wall-clock -- app.py
    --quiet             Do not say which files the tracer writes.
    --capture PATH      Record the run with `perf record` (and the trace file in
                        instrumented mode; the sampler's trace file alone in sampler mode)
                        and save everything in the directory PATH
                        (replaced if it is an earlier capture; see docs/capture.md).
                          python -m etwtrace --capture run.etwtrace -- app.py
    --capture-profile NAME
                        The recording profile to capture with: Default (CPU samples and
                        context switches with DWARF stacks, plus the Python probes),
                        Minimal (Python probes and process/thread events, no sampling),
                        FramePointers, or any section of the profile file.
                          python -m etwtrace --capture run.etwtrace --capture-profile Minimal -- app.py
    --keep-perf-data    Keep perf.data and the binaries it resolves against in the capture
                        (for perf report, hotspot); by default the capture keeps only the
                        symbolized events, which etwtrace reads without perf.
                          python -m etwtrace --capture run.etwtrace --keep-perf-data -- app.py
    --profile-file PATH Read the profiles from PATH instead of the shipped file (start
                        from a copy of the file that --profile prints).
                          python -m etwtrace --capture run.etwtrace --profile-file my.ini -- app.py

Usage: python -m etwtrace dump PATH [--pid PID] [--tid TID] [--event NAME]

    Prints every event of a capture (or trace file) as one line of text, in time order:
    time, event name, pid/tid, fields, then the stack, leaf first.
                          python -m etwtrace dump run.etwtrace --event PythonStackSample

Usage: python -m etwtrace --enable [ENABLE_VAR [TYPE_VAR]]

    Starts tracing automatically in every interpreter of this environment, by writing
    etwtrace.pth into its site-packages. With ENABLE_VAR, only when that variable is set to a
    true value (anything not starting with 0, n or f). TYPE_VAR (default ENABLE_VAR_TYPE, or
    ETWTRACE_TYPE) selects the mode: stack (default), instrumented or sampler.
                          python -m etwtrace --enable PYTRACE  &&  PYTRACE=1 python app.py

Usage: python -m etwtrace --disable

    Removes the etwtrace.pth written by --enable.
                          python -m etwtrace --disable

Other options:
    -h, -?, --help      Show this help.
    --version           Show the version.
    --info              Show technical information for bug reports (a Python tuple).
                          python -m etwtrace --info --instrument
    --profile           Show the path of the shipped perf recording-profile file.
    --stacktags         Show the path of the shipped stack-tags file.
"""


# option -> (kind, what). Kinds: "mode" sets the tracing mode; "value" takes a value (as the
# next argument or after "="), stored under `what`, with `EXAMPLES[what]` shown when missing;
# "flag" sets `what` to True; "action" is done after parsing, in order; "final" is an action that ends the option list
# (what follows it is not used); "enable" takes up to two variable names.
OPTIONS = {
    "--stack": ("mode", "stack"),
    "--instrument": ("mode", "instrumented"),
    "--instrumented": ("mode", "instrumented"),
    "--sampler": ("mode", "sampler"),
    "--sample-rate": ("value", "sample_rate"),
    "--wall-clock": ("flag", "wall_clock"),
    "--capture": ("value", "capture_path"),
    "--capture-profile": ("value", "profile_name"),
    "--profile-file": ("value", "profile_file"),
    "--profile": ("action", "profile"),
    "--stacktags": ("action", "stacktags"),
    "--info": ("action", "info"),
    "--quiet": ("flag", "quiet"),
    "--keep-perf-data": ("flag", "keep_perf_data"),
    "-h": ("final", "help"),
    "-?": ("final", "help"),
    "--help": ("final", "help"),
    "--version": ("final", "version"),
    "--enable": ("enable", "enable"),
    "--disable": ("final", "disable"),
}

VALUE_EXAMPLES = {
    "capture_path": ("a path", "run.etwtrace"),
    "profile_name": ("a profile name", "Minimal"),
    "profile_file": ("a path", "my-profiles.ini"),
    "sample_rate": ("a number of samples per second", "1000"),
}
MODE_OPTIONS = {"stack": "--stack", "instrumented": "--instrument", "sampler": "--sampler"}


class Command:
    """What the command line asks for. A plain class: dataclasses and typing would add ~25 ms
    and dozens of modules to every launch, objects the traced program's collector then walks."""

    def __init__(self):
        self.mode = None  # "stack", "instrumented" or "sampler"; None: not given (stack)
        self.instrumented_with_samples = False  # --instrument --sampler: both, one clock
        self.sample_rate = None  # --sample-rate (sampler)
        self.wall_clock = False  # --wall-clock (sampler)
        self.quiet = False  # do not say which files the tracer writes
        self.keep_perf_data = False  # a capture also keeps perf.data and its binaries
        self.capture_path = None
        self.profile_name = None
        self.profile_file = None
        self.actions = []  # (action, args) in the order given
        self.target = None  # what follows "--"
        self.unused = []

    @property
    def tracer_options(self):
        """The tracer's keyword arguments: the SamplingTracer's from --sample-rate and
        --wall-clock, or for --instrument --sampler the InstrumentedTracer's samples options."""
        options = {}
        if self.sample_rate is not None:
            options["rate"] = int(self.sample_rate)
        if self.wall_clock:
            options["clock"] = "wall"
        if self.instrumented_with_samples:
            return {"samples": True, **{"sample_" + key: value for key, value in options.items()}}
        return options

    @property
    def capture_options(self):
        options = {}
        if self.profile_name is not None:
            options["profile_name"] = self.profile_name
        if self.profile_file is not None:
            options["profile_file"] = self.profile_file
        if self.keep_perf_data:
            options["keep_perf_data"] = True
        return options


def _value(option, what, inline, args):
    if inline is not None:
        value = inline
    elif args and not args[0].startswith("-"):
        value = args.pop(0)
    else:
        value = ""
    if not value:
        noun, example = VALUE_EXAMPLES[what]
        raise UsageError(f"{option} needs {noun}, for example: {option} {example}")
    return value


def parse(args):
    """The Command that the argument list `args` asks for (UsageError for a malformed one)."""
    args = list(args)
    command = Command()
    while args:
        arg = args.pop(0)
        if arg == "--":
            if not args:
                raise UsageError("nothing to run after '--'; give a script or -m module")
            command.target = args
            break
        option, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        kind, what = OPTIONS.get(option, (None, None))
        if kind == "value":
            setattr(command, what, _value(option, what, inline if eq else None, args))
            continue
        if eq or kind is None:
            command.unused.append(arg)
        elif kind == "mode":
            if {command.mode, what} == {"instrumented", "sampler"}:
                command.mode, command.instrumented_with_samples = "instrumented", True  # one run, both
            elif command.instrumented_with_samples and what in ("instrumented", "sampler"):
                pass
            elif command.mode not in (None, what):
                raise UsageError(f"{MODE_OPTIONS[command.mode]} and {MODE_OPTIONS[what]} cannot be used together; "
                                 "choose one mode (only --instrument and --sampler go together)")
            else:
                command.mode = what
        elif kind == "flag":
            setattr(command, what, True)
        elif kind == "action":
            command.actions.append((what, ()))
        elif kind == "final":
            command.actions.append((what, ()))
            command.unused.extend(args)
            break
        elif kind == "enable":
            names = []
            while args and not args[0].startswith("-") and len(names) < 2:
                names.append(args.pop(0))
            command.actions.append((what, tuple(names)))
            command.unused.extend(args)
            break
    if command.sample_rate is not None:
        rate = command.sample_rate
        if not rate.isdigit() or not 1 <= int(rate) <= 100000:
            raise UsageError(f"--sample-rate needs a whole number of samples per second from 1 to 100000, "
                             f"not {rate!r}; for example: --sample-rate 1000")
    if (command.sample_rate is not None or command.wall_clock) and command.mode != "sampler" \
            and not command.instrumented_with_samples:
        option = "--sample-rate" if command.sample_rate is not None else "--wall-clock"
        raise UsageError(f"{option} only applies to the sampler; add --sampler")
    if command.target is not None and not command.unused and command.capture_path is None:
        if command.profile_name is not None or command.profile_file is not None or command.keep_perf_data:
            option = ("--capture-profile" if command.profile_name is not None else
                      "--profile-file" if command.profile_file is not None else "--keep-perf-data")
            raise UsageError(f"{option} only applies to a capture; add --capture PATH")
    return command
