"""How perf's samples become the Profile's frames and stacks (`SampleBuilder`).

Frames. A Python frame is FrameKey(PYTHON, qualname, source file, first line): in stack mode
the thunk frames (`py::<qualname>:<file>` symbols, named from their PythonFunction event); in
instrumented traces the trace's own calls. A C function recorded by an instrumented trace
(`zlib.compress`, `exec`) is FrameKey(NATIVE, name, module name). Other frames are NATIVE
with their shared object, or KERNEL (module `[kernel.kallsyms]`, or an address in the upper
half); a native frame without a symbol is named `[<module file name>]` (runs of them merge
into one) or by its address when even the module is unknown, and counted in
health.unresolved_frames (once per distinct address).

Instrumented processes (the merge rule). perf's samples carry a native stack in which Python
functions are only `_PyEval_EvalFrameDefault`, and the trace file gives the Python stack of
that instant (`event.python_stack`). The merged stack, root first, is: the native frames
rootward of the outermost eval-loop frame (process or thread start-up), then the trace's
Python stack, then the native frames leafward of the innermost eval-loop frame (the C
extension, libc and kernel code running at the sample). The native frames between the outermost and
innermost eval loops are dropped: they are the interpreter's call glue, and the C functions
among them are in the trace's stack themselves. The trace's innermost C-function entries are
dropped when native frames follow them, which show the same call in more detail. A sample
with no eval-loop frame (its unwind stopped early) gets the Python stack rootward of all its
native frames; a sample of a traced thread with an eval loop but no Python stack counts in
health.unmerged_samples.

Short stacks: a sample whose outermost native frame is not where threads begin
(THREAD_ROOTS: `_start`, `__libc_start_main`, `clone`, `clone3`, `start_thread`, ...) was cut
short by the unwinder (too little stack copied, or missing unwind information); it is counted
in health.short_stacks and kept as it is.

Off-CPU time (sched:sched_switch): perf records the switch-out of our threads (with the stack
where they blocked, or were preempted) but, per task, not their switch-in; a thread is back on
the CPU at the first later event it produces (a sample, a probe, another switch-out), or when
another of our threads switches to it, whichever comes first. A thread that never runs again
adds nothing.
"""

import os

from .profile import KERNEL, NATIVE, PYTHON, TAG, FrameKey, Sample
from .stacktags import fold

KERNEL_START = 0xFFFF800000000000
EVAL_LOOP = frozenset({"_PyEval_EvalFrameDefault", "_PyEval_EvalFrame", "PyEval_EvalFrameEx",
                       "PyEval_EvalFrame"})
THREAD_ROOTS = frozenset({"_start", "__libc_start_main", "__libc_start_call_main", "clone", "clone3",
                          "__clone", "__clone3", "__GI___clone", "__GI___clone3", "start_thread",
                          "thread_start", "ret_from_fork", "ret_from_fork_asm"})
CPU_CLOCKS = ("cpu-clock", "task-clock")
SAMPLE_CACHE_LIMIT = 1 << 20  # distinct perf stacks remembered (beyond: resolved each time)
_UNKNOWN = object()


def _strip_version(symbol):
    """`__libc_start_main@@GLIBC_2.34` -> `__libc_start_main` (symbol versions are noise here)."""
    return symbol.split("@", 1)[0] if symbol and "@" in symbol[1:] else symbol


class SampleBuilder:
    def __init__(self, profile, tags, filters, timeline):
        self.p = profile
        self.tags = tags  # None: --raw
        self.filters = filters
        self.timeline = timeline
        self._raw_frames = {}  # perf frame identity -> (frame number, symbol, is eval loop)
        self._unresolved = set()
        self._frame_tags = []  # frame number -> tag (None untagged)
        self._folded = {}  # tuple of frame numbers (root first) -> stack number
        self._kept_stack = {}  # stack number -> passes the file filters
        self.trace_starts = {}  # pid -> when its instrumented trace began
        self._samples = {}  # (pid, ids of the frames) -> [native frames, short, stack number, frames]

    # -- frames -------------------------------------------------------------------------------

    def frame_number(self, key):
        number = self.p.frame(key)
        while len(self._frame_tags) <= number:
            self._frame_tags.append(self._tag_of(self.p.frames[len(self._frame_tags)]))
        return number

    def _tag_of(self, key):
        if self.tags is None or key.kind == TAG:
            return None
        if key.kind == PYTHON:
            return self.tags.tag(key.file, f"py::{key.name}:{key.file}")
        if key.name.startswith("[") or key.name.startswith("0x"):
            return self.tags.tag(key.name.strip("[]") if key.name.startswith("[") else "", None)
        return self.tags.tag(os.path.basename(key.file), key.name)

    def perf_frame(self, frame):
        """(frame number, symbol, in the eval loop) of one perf stack frame, a Frame or an
        (address, symbol, module, function) tuple."""
        if isinstance(frame, tuple):
            return self._perf_frame(*frame)
        return self._perf_frame(int(frame), getattr(frame, "symbol", None), getattr(frame, "module", None),
                                getattr(frame, "function", None))

    def _perf_frame(self, address, symbol, module, function, identity=None):
        identity = identity or (address, symbol, module, function)
        known = self._raw_frames.get(identity)
        if known is not None:
            return known
        symbol = _strip_version(symbol)
        if symbol == "[unknown]":
            symbol = None
        if function is not None:
            key = FrameKey(PYTHON, function["Name"], function["SourceFile"] or "", function["LineNumber"] or 0)
        elif symbol and symbol.startswith("py::"):
            qualname, _, source = symbol[4:].partition(":")
            key = FrameKey(PYTHON, qualname, source, 0)
        elif module == "[kernel.kallsyms]" or (module or "").startswith("[kernel") or address >= KERNEL_START:
            key = FrameKey(KERNEL, symbol or f"{address:#x}", module or "[kernel.kallsyms]")
        elif symbol:
            key = FrameKey(NATIVE, symbol, module or "")
        else:
            if (module, address) not in self._unresolved:
                self._unresolved.add((module, address))
                self.p.health.unresolved_frames += 1
            key = FrameKey(NATIVE, f"[{os.path.basename(module)}]" if module else f"{address:#x}", "")
        known = self._raw_frames[identity] = (self.frame_number(key), symbol, symbol in EVAL_LOOP)
        return known

    def trace_frame(self, name, source_file, line, is_python):
        if is_python:
            return self.frame_number(FrameKey(PYTHON, name, source_file or "", line or 0))
        return self.frame_number(FrameKey(NATIVE, name, source_file or ""))

    # -- stacks -------------------------------------------------------------------------------

    def stack_number(self, root_first):
        """The Profile stack of frames (root first) after folding; None if filtered out."""
        root_first = tuple(root_first)
        number = self._folded.get(root_first)
        if number is None:
            frames = root_first
            if self.tags is not None:
                tags = [self._frame_tags[i] for i in frames]
                python = [self.p.frames[i].kind == PYTHON for i in frames]
                frames = fold(frames, tags, python, self._tag_frame)
            number = self._folded[root_first] = self.p.stack(frames)
        kept = self._kept_stack.get(number)
        if kept is None:
            files = [self.p.frames[i].file for i in self.p.stacks[number] if self.p.frames[i].kind == PYTHON]
            kept = self._kept_stack[number] = self.filters.files(files)
        return number if kept else None

    def _tag_frame(self, tag):
        return self.frame_number(FrameKey(TAG, tag))

    def sample_stack(self, event, count_short=False):
        """The merged, folded stack number of a perf event (None: filtered out).

        The hot path of a report: a capture has few distinct stacks and many samples. An event
        of the report's stream (perf_data.PerfEvent) names its stack by `stack_key` and its
        frames are built once per distinct stack; read()'s events share one Frame object per
        frame of a process, so their stack is looked up by the identity of its frames (the
        cache keeps the frames, so their ids stay theirs).
        """
        stack_key = getattr(event, "stack_key", _UNKNOWN)
        if stack_key is not _UNKNOWN:
            key = stack_key
            known = self._samples.get(key)
            if known is None:
                known = self._remember(key, event.frame_tuples() if key is not None else [], None)
        else:
            stack = event.stack
            key = (event.pid, tuple(map(id, stack)))
            known = self._samples.get(key)
            if known is None:
                known = self._remember(key, stack, stack)
        if count_short and known[1]:
            self.p.health.short_stacks += 1
        python_stack = getattr(event, "python_stack", None)
        if python_stack is None:
            number = known[2]
            if number is _UNKNOWN:
                number = known[2] = self.stack_number([n for n, _s, _e in reversed(known[0])])
            return number
        leaf_first = self._merge(event, known[0], python_stack)
        leaf_first.reverse()
        return self.stack_number(leaf_first)

    def _remember(self, key, frames, keep):
        native = self._native_frames(frames)
        known = [native, bool(native) and native[-1][1] not in THREAD_ROOTS, _UNKNOWN, keep]
        if len(self._samples) < SAMPLE_CACHE_LIMIT:
            self._samples[key] = known
        return known

    def _native_frames(self, stack):
        """[(frame number, symbol, is eval loop)] of a perf stack, leaf first: a list of
        (address, symbol, module, function) tuples, or of Frames."""
        if stack and not isinstance(stack[0], tuple):
            stack = [(int(f), getattr(f, "symbol", None), getattr(f, "module", None), getattr(f, "function", None))
                     for f in stack]
        raw = self._raw_frames
        native = []
        previous = None
        outermost = len(stack)
        # Where the unwinder lost its way it adds a frame of no known module: not a frame.
        # (A sampler's Python frame has no module but is a frame.)
        while outermost and stack[outermost - 1][2] in ("[unknown]", None) and not stack[outermost - 1][1] \
                and stack[outermost - 1][3] is None:
            outermost -= 1
        for i in range(outermost):
            frame = stack[i]
            resolved = raw.get(frame) or self._perf_frame(*frame, identity=frame)
            if resolved[0] == previous and resolved[1] is None:
                continue  # consecutive frames without symbols in one module read as one
            previous = resolved[0]
            native.append(resolved)
        return native

    def _merge(self, event, native, python_stack):
        evals = [i for i, (_n, _s, is_eval) in enumerate(native) if is_eval]
        python = []
        for frame in python_stack:
            function = getattr(frame, "function", None)
            if function is not None:
                python.append((self.trace_frame(function["Name"], function["SourceFile"], function["LineNumber"],
                                                function.get("IsPythonCode", 1)), bool(function.get("IsPythonCode", 1))))
            else:
                python.append((self.trace_frame(frame.name, frame.source_file, frame.line, frame.is_python),
                               frame.is_python))
        if not python:
            if evals and event.timestamp >= self.trace_starts.get(event.pid, 1 << 63):
                self.p.health.unmerged_samples += 1
            return [n for n, _s, _e in native]
        if not evals:
            return [n for n, _s, _e in native] + [n for n, _py in python]
        leaf = [n for n, _s, _e in native[:evals[0]]]
        root = [n for n, _s, _e in native[evals[-1] + 1:]]
        if leaf:
            while python and not python[0][1]:
                python.pop(0)
        return leaf + [n for n, _py in python] + root


def add_offcpu(builder, tid, switched, back_ns):
    pid, stack, out_ns = switched
    if stack is None or back_ns <= out_ns:
        return
    builder.p.add("offcpu", pid, tid, stack, back_ns - out_ns)
    if builder.timeline:
        builder.p.samples.append(Sample(pid, tid, out_ns, stack, "offcpu", back_ns - out_ns))


