"""The report's one data model: what every output format renders.

A `Profile` is built once from a capture or trace file (see `build.py`) and handed to each
format's `write(profile, out, options)`. It holds:

* `frames`: every distinct frame once (`FrameKey`: kind, name, file, line), numbered;
* `stacks`: every distinct call stack once, as a tuple of frame numbers **root first**;
* `weights`: per metric, per (pid, tid, stack number), the weight of that stack;
* `functions`: exact per-function figures of instrumented traces (calls, inclusive and
  exclusive time), keyed by frame number;
* a timeline (`slices`, `marks`, `samples`) for the formats that draw one, kept only when the
  format asks for it;
* `threads` (names), `health` (what was lost or partial) and the time span.

Metrics (the keys of `weights`, with their unit in `METRICS`):

* ``cpu``: CPU samples (weight: number of samples; `sample_period_ns` turns it into time);
* ``offcpu``: time a thread spent switched out, in ns, by the stack it was switched out at;
* ``instrumented``: self time in ns of each call stack, from an instrumented trace (so the
  flame graph of this metric is the exact time flame graph);
* ``calls``: number of calls that ended with that exact stack (instrumented traces).
"""

from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

PYTHON = "python"
NATIVE = "native"
KERNEL = "kernel"
TAG = "tag"  # a run of frames folded by a stack-tag rule, named by the tag
KINDS = (PYTHON, NATIVE, KERNEL, TAG)

METRICS = {
    "cpu": "samples",
    "offcpu": "ns",
    "instrumented": "ns",
    "calls": "calls",
}


class FrameKey(NamedTuple):
    """One frame as the report shows it.

    kind: PYTHON, NATIVE, KERNEL or TAG.
    name: Python qualname, native or kernel symbol (``0x...`` in ``[module]`` when unknown), or
        the tag's name.
    file: Python source file; for native and kernel frames, the module (shared object path,
        ``[kernel.kallsyms]``); empty for tags.
    line: first line of a Python function (0 when unknown or not Python).
    """

    kind: str
    name: str
    file: str = ""
    line: int = 0

    @property
    def label(self):
        """The text a flame graph shows: ``name (file:line)`` for Python, ``name [module]``."""
        import os

        if self.kind == PYTHON:
            where = f"{self.file}:{self.line}" if self.line else self.file
            return f"{self.name} ({where})" if where else self.name
        if self.kind == TAG or not self.file:
            return self.name
        module = os.path.basename(self.file)
        if module.startswith("[") and module.endswith("]"):  # [kernel.kallsyms], [vdso]: bracketed already
            return f"{self.name} {module}"
        return f"{self.name} [{module}]"


class FunctionStats(NamedTuple):
    """Exact figures for one function of an instrumented trace (times in ns)."""

    calls: int
    inclusive_ns: int  # recursion counted once (time under the outermost active call)
    exclusive_ns: int


class Slice(NamedTuple):
    """One instrumented call on the timeline."""

    pid: int
    tid: int
    start_ns: int
    end_ns: int
    frame: int  # frame number
    depth: int  # 0 = outermost


class Mark(NamedTuple):
    """A mark (kind "mark"), a mark range (kind "range", end_ns set) or a stack mark ("stack")."""

    pid: int
    tid: int
    start_ns: int
    end_ns: Optional[int]
    text: str
    kind: str
    stack: Optional[int] = None  # stack number, for "stack" marks when known


class Sample(NamedTuple):
    """One timed sample: a CPU sample or a context switch."""

    pid: int
    tid: int
    time_ns: int
    stack: int  # stack number
    metric: str  # "cpu" or "offcpu"
    weight: int  # 1 for a CPU sample; ns switched out for offcpu


@dataclass
class Health:
    """What was lost or is partial; the summary prints it, never hiding a non-zero count."""

    samples: int = 0  # CPU samples read
    context_switches: int = 0
    lost_chunks: int = 0  # perf: chunks (records) lost while recording
    lost_events: int = 0  # trace files: events the writer could not store
    truncated_traces: int = 0  # trace files cut short (killed process) or damaged
    incomplete_capture: bool = False  # manifest says the capture did not finish
    unresolved_frames: int = 0  # native frames without a symbol
    short_stacks: int = 0  # samples whose unwind stopped before reaching the thread's root
    unmerged_samples: int = 0  # samples that could not be given their Python stack
    notes: List[str] = field(default_factory=list)  # other warnings, one sentence each


@dataclass
class Profile:
    source: str = ""  # the path that was read
    mode: str = ""  # "stack", "instrumented", "sampler", "instrumented+sampler", or "trace" (a plain trace file)
    start_ns: int = 0  # CLOCK_MONOTONIC of the first event
    end_ns: int = 0
    sample_period_ns: int = 0  # mean period of one CPU sample (0 when unknown)
    frames: List[FrameKey] = field(default_factory=list)
    stacks: List[Tuple[int, ...]] = field(default_factory=list)
    weights: Dict[str, Dict[Tuple[int, int, int], int]] = field(default_factory=dict)
    functions: Dict[int, FunctionStats] = field(default_factory=dict)
    threads: Dict[Tuple[int, int], str] = field(default_factory=dict)  # (pid, tid) -> name
    processes: Dict[int, str] = field(default_factory=dict)  # pid -> command
    slices: List[Slice] = field(default_factory=list)
    marks: List[Mark] = field(default_factory=list)
    samples: List[Sample] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    _frame_index: Dict[FrameKey, int] = field(default_factory=dict, repr=False)
    _stack_index: Dict[Tuple[int, ...], int] = field(default_factory=dict, repr=False)

    # -- building ---------------------------------------------------------------------------

    def frame(self, key):
        """The number of a frame, adding it the first time it is seen."""
        number = self._frame_index.get(key)
        if number is None:
            number = self._frame_index[key] = len(self.frames)
            self.frames.append(key)
        return number

    def stack(self, frames):
        """The number of a stack (a tuple of frame numbers, root first), adding it if new."""
        frames = tuple(frames)
        number = self._stack_index.get(frames)
        if number is None:
            number = self._stack_index[frames] = len(self.stacks)
            self.stacks.append(frames)
        return number

    def add(self, metric, pid, tid, stack, weight=1):
        table = self.weights.setdefault(metric, {})
        key = (pid, tid, stack)
        table[key] = table.get(key, 0) + weight

    # -- reading ----------------------------------------------------------------------------

    @property
    def metrics(self):
        """The metrics with any weight, in METRICS order."""
        return [m for m in METRICS if self.weights.get(m)]

    def stack_weights(self, metric, pid=None, tid=None):
        """{stack number: weight} for a metric, summed over threads (or for one pid/tid)."""
        out = {}
        for (p, t, s), w in self.weights.get(metric, {}).items():
            if pid is not None and p != pid or tid is not None and t != tid:
                continue
            out[s] = out.get(s, 0) + w
        return out

    def total(self, metric):
        return sum(self.weights.get(metric, {}).values())

    def frames_of(self, stack):
        """The FrameKeys of a stack number, root first."""
        return [self.frames[i] for i in self.stacks[stack]]
