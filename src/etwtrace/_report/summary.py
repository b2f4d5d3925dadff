"""The text summary (the default format): where the time went, in at most 100 columns.

Sections, each only when the profile has its data: the header; Python functions by self and
total time from CPU samples; under the hottest of them, the native code their self time is
spent in; the exact figures of instrumented traces; off-CPU time by Python stack; marks and
mark ranges; the same per process and thread with --per-thread; and always one health line.
"""

import os
import textwrap

from .profile import KERNEL, NATIVE, PYTHON, TAG

WIDTH = 100
BREAKDOWN_FUNCTIONS = 5  # hot Python functions that get their native-code breakdown
BREAKDOWN_ROWS = 4


def write(profile, out, options):
    lines = Summary(profile, options).lines()
    out.write(("\n".join(lines) + "\n").encode("utf-8"))


def _ms(ns):
    return f"{ns / 1e6:,.1f}"


def _pct(part, whole):
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def _fit(text, width):
    """Cut text to width, dropping from the left (the end of a path is what identifies it)."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def function_label(key):
    if key.kind == KERNEL:
        return f"{key.name} [kernel]"
    if key.kind == PYTHON:
        where = os.path.basename(key.file) if not key.file.startswith("<") else key.file
        return f"{key.name} ({where}:{key.line})" if key.line else f"{key.name} ({where})"
    return key.label


def native_category(key):
    """What kind of code a non-Python frame is: for "what does this Python code spend time in"."""
    if key.kind == KERNEL:
        return "kernel"
    if key.kind == TAG:
        return "interpreter"
    module = os.path.basename(key.file) if key.file else key.name.strip("[]")
    if module.startswith(("libc.so", "libc-", "ld-linux", "libpthread", "libm.so", "libdl", "librt")):
        return "libc"
    if module.startswith("libpython") or module.startswith("python"):
        return "interpreter"
    if ".cpython-" in module or "/lib-dynload/" in key.file or "-packages/" in key.file:
        return "C extension"
    if not key.file and key.name.startswith("0x"):
        return "unknown"
    if not module.endswith(".so") and ".so." not in module and key.kind == NATIVE and key.file and \
            "/" not in key.file:
        return "C function"  # a C function an instrumented trace recorded (module name only)
    return "library"


class Summary:
    def __init__(self, profile, options):
        self.p = profile
        self.options = options
        self.top = max(1, int(getattr(options, "top", 25) or 25))
        self.color = bool(getattr(options, "color", False))

    def _bold(self, text):
        return f"\033[1m{text}\033[0m" if self.color else text

    def _warn(self, text):
        return f"\033[1;31m{text}\033[0m" if self.color else text

    def lines(self):
        p = self.p
        out = self._header()
        threads = [None]
        if getattr(self.options, "per_thread", False):
            keys = set()
            for table in p.weights.values():
                keys.update((pid, tid) for pid, tid, _s in table)
            threads += sorted(keys)
        for thread in threads:
            if thread is not None:
                pid, tid = thread
                name = p.threads.get(thread, "")
                out += ["", self._bold(f"=== process {pid}, thread {tid}" + (f" ({name})" if name else ""))]
            out += self._cpu(thread)
            out += self._instrumented(thread)
            out += self._offcpu(thread)
        out += self._marks()
        out += ["", self.health_line()]
        return out

    # -- header -------------------------------------------------------------------------------

    def _header(self):
        p = self.p
        modes = {"stack": "stack sampling", "instrumented": "instrumented", "trace": "trace file", "sampler": "sampler",
                 "instrumented+sampler": "instrumented, with the sampler's samples"}
        threads = set()
        for table in p.weights.values():
            threads.update((pid, tid) for pid, tid, _s in table)
        pids = {pid for pid, _t in threads} | set(p.processes)
        duration = (p.end_ns - p.start_ns) / 1e9 if p.end_ns > p.start_ns else 0.0
        lines = [self._bold(f"etwtrace report: {p.source}"),
                 f"mode: {modes.get(p.mode, p.mode or '?')}   duration: {duration:.3f} s   "
                 f"processes: {len(pids)}   threads: {len(threads)}"]
        if p.sample_period_ns:
            lines[-1] += f"   sampling: {1e9 / p.sample_period_ns:,.0f} Hz"
        for pid in sorted(p.processes):
            lines.append(_fit(f"  process {pid}: {p.processes[pid]}", WIDTH))
        return lines

    # -- CPU samples --------------------------------------------------------------------------

    def _python_self_total(self, weights):
        """{frame: self samples}, {frame: total samples} of the Python frames."""
        p = self.p
        self_w, total_w = {}, {}
        for stack, w in weights.items():
            frames = p.stacks[stack]
            python = [f for f in frames if p.frames[f].kind == PYTHON]
            if not python:
                continue
            self_w[python[-1]] = self_w.get(python[-1], 0) + w
            for f in set(python):
                total_w[f] = total_w.get(f, 0) + w
        return self_w, total_w

    def _cpu(self, thread):
        p = self.p
        pid, tid = thread if thread else (None, None)
        weights = p.stack_weights("cpu", pid, tid)
        samples = sum(weights.values())
        if not samples:
            return []
        self_w, total_w = self._python_self_total(weights)
        period = p.sample_period_ns
        unit = "ms" if period else "samples"
        est = (lambda n: _ms(n * period)) if period else (lambda n: f"{n:,}")
        in_python = sum(self_w.values())
        out = ["", self._bold(f"Python functions by CPU time ({samples:,} samples"
                              + (f", ~{_ms(samples * period)} ms" if period else "") + "; "
                              + f"{_pct(in_python, samples).strip()} of them under Python code)")]
        name_width = WIDTH - 2 - 7 - 11 - 7 - 11 - 4
        out.append(f"  {'self':>7} {unit:>10} {'total':>7} {unit:>10}   function")
        order = sorted(total_w, key=lambda f: (-self_w.get(f, 0), -total_w[f]))
        for f in order[:self.top]:
            s, t = self_w.get(f, 0), total_w[f]
            out.append(f"  {_pct(s, samples):>7} {est(s):>10} {_pct(t, samples):>7} {est(t):>10}   "
                       f"{_fit(function_label(p.frames[f]), name_width)}")
        if len(order) > self.top:
            out.append(f"  ... {len(order) - self.top} more (--top N)")
        out += self._native_breakdown(weights, self_w, samples)
        return out

    def _native_breakdown(self, weights, self_w, samples):
        """Under each hot Python function: the native code between it and the leaf."""
        p = self.p
        hot = [f for f in sorted(self_w, key=lambda f: -self_w[f])[:BREAKDOWN_FUNCTIONS] if self_w[f]]
        if not hot:
            return []
        groups = {f: {} for f in hot}  # function -> {first native frame: {leaf: weight}}
        for stack, w in weights.items():
            frames = p.stacks[stack]
            innermost = None
            for i in range(len(frames) - 1, -1, -1):
                if p.frames[frames[i]].kind == PYTHON:
                    innermost = i
                    break
            if innermost is None or frames[innermost] not in groups:
                continue
            below = frames[innermost + 1:]
            first, leaf = (below[0], below[-1]) if below else (None, None)
            leaves = groups[frames[innermost]].setdefault(first, {})
            leaves[leaf] = leaves.get(leaf, 0) + w
        out = ["", self._bold("Where the hottest Python functions spend their self time")]
        label_width = WIDTH - 6 - 8 - 16
        for f in hot:
            own = self_w[f]
            out.append(f"  {_fit(function_label(p.frames[f]), WIDTH - 30)}: {_pct(own, samples).strip()} "
                       f"of all samples")
            rows = sorted(groups[f].items(), key=lambda item: -sum(item[1].values()))
            for first, leaves in rows[:BREAKDOWN_ROWS]:
                w = sum(leaves.values())
                if first is None:
                    out.append(f"    {_pct(w, own):>7}  {'(its own bytecode: no native frame below it)':<{label_width}}")
                    continue
                key = p.frames[first]
                out.append(f"    {_pct(w, own):>7}  {_fit(function_label(key), label_width):<{label_width}} "
                           f"{native_category(key)}")
                leaf_rows = sorted(leaves.items(), key=lambda item: -item[1])
                if len(leaf_rows) == 1 and leaf_rows[0][0] == first:
                    continue
                for leaf, lw in leaf_rows[:3]:
                    lkey = p.frames[leaf]
                    out.append(f"      {_pct(lw, own):>7}  leaf {_fit(function_label(lkey), label_width - 7):<{label_width - 7}} "
                               f"{native_category(lkey)}")
            if len(rows) > BREAKDOWN_ROWS:
                rest = sum(sum(leaves.values()) for _f, leaves in rows[BREAKDOWN_ROWS:])
                out.append(f"    {_pct(rest, own):>7}  ({len(rows) - BREAKDOWN_ROWS} more)")
        return out

    # -- instrumented -------------------------------------------------------------------------

    def _instrumented(self, thread):
        p = self.p
        if thread is not None or not p.functions:
            # Exact per-function figures are per process; per thread the stacks show them.
            return self._instrumented_stacks(thread) if thread is not None else []
        stats = sorted(p.functions.items(), key=lambda item: (-item[1].exclusive_ns, -item[1].inclusive_ns))
        total = p.total("instrumented")
        out = ["", self._bold(f"Exact figures from the instrumented trace ({_ms(total)} ms traced, "
                              f"by exclusive time)"),
               f"  {'calls':>10} {'incl. ms':>11} {'excl. ms':>11} {'excl.':>6} {'mean µs':>10}   function"]
        name_width = WIDTH - 2 - 10 - 12 - 12 - 7 - 11 - 3
        for f, s in stats[:self.top]:
            mean = s.inclusive_ns / s.calls / 1e3 if s.calls else 0.0
            out.append(f"  {s.calls:>10,} {_ms(s.inclusive_ns):>11} {_ms(s.exclusive_ns):>11} "
                       f"{_pct(s.exclusive_ns, total):>6} {mean:>10,.1f}   {_fit(function_label(p.frames[f]), name_width)}")
        if len(stats) > self.top:
            out.append(f"  ... {len(stats) - self.top} more (--top N)")
        return out

    def _instrumented_stacks(self, thread):
        pid, tid = thread
        weights = self.p.stack_weights("instrumented", pid, tid)
        if not weights:
            return []
        total = sum(weights.values())
        self_w, _total_w = self._python_self_total(weights)
        out = ["", self._bold(f"Traced self time ({_ms(total)} ms)"), f"  {'self':>7} {'ms':>10}   function"]
        for f in sorted(self_w, key=lambda f: -self_w[f])[:self.top]:
            out.append(f"  {_pct(self_w[f], total):>7} {_ms(self_w[f]):>10}   "
                       f"{_fit(function_label(self.p.frames[f]), WIDTH - 24)}")
        return out

    # -- off-CPU ------------------------------------------------------------------------------

    def _offcpu(self, thread):
        p = self.p
        pid, tid = thread if thread else (None, None)
        weights = p.stack_weights("offcpu", pid, tid)
        total = sum(weights.values())
        if not total:
            return []
        by_chain = {}
        for stack, w in weights.items():
            frames = [p.frames[f] for f in p.stacks[stack]]
            python = [function_label(k) for k in frames if k.kind == PYTHON]
            # What the Python code called that blocked: the first frame below the innermost
            # Python frame (none: it was preempted in its own bytecode).
            innermost = max((i for i, k in enumerate(frames) if k.kind == PYTHON), default=None)
            if innermost is None:
                below = [k for k in frames if k.kind != KERNEL] or frames[-1:]
                blocked = below[-1] if below else None
            else:
                blocked = frames[innermost + 1] if innermost + 1 < len(frames) else None
            chain = " > ".join(python[-2:]) or "(no Python frame)"
            where = function_label(blocked) if blocked is not None else ""
            key = (chain, where)
            by_chain[key] = by_chain.get(key, 0) + w
        out = ["", self._bold(f"Off-CPU time by Python stack ({_ms(total)} ms switched out)"),
               f"  {'ms':>10} {'share':>6}   innermost Python frames > blocked in"]
        for (chain, where), w in sorted(by_chain.items(), key=lambda item: -item[1])[:self.top]:
            text = chain + (f"  [in {where}]" if where else "")
            out.append(f"  {_ms(w):>10} {_pct(w, total):>6}   {_fit(text, WIDTH - 22)}")
        return out

    # -- marks --------------------------------------------------------------------------------

    def _marks(self):
        p = self.p
        if not p.marks:
            return []
        out = ["", self._bold("Marks (seconds from the start)")]
        shown = p.marks[:self.top]
        for m in shown:
            at = (m.start_ns - p.start_ns) / 1e9
            if m.kind == "range":
                length = f"{_ms(m.end_ns - m.start_ns)} ms" if m.end_ns is not None else "never stopped"
                text = f"  {at:>10.6f}  range  {_fit(m.text, 50):<50} {length:>14}"
            else:
                text = f"  {at:>10.6f}  {m.kind:<5}  {_fit(m.text, 50)}"
            out.append(text.rstrip() + f"   (tid {m.tid})")
        if len(p.marks) > len(shown):
            out.append(f"  ... {len(p.marks) - len(shown)} more (--top N)")
        return out

    # -- health -------------------------------------------------------------------------------

    def health_line(self):
        h = self.p.health
        parts = [f"{h.samples:,} samples", f"{h.context_switches:,} switches", f"{h.lost_chunks:,} lost chunks"]
        if self.p.mode != "stack" or h.lost_events or h.truncated_traces:  # trace files were read
            parts += [f"{h.lost_events:,} lost events", f"{h.truncated_traces:,} damaged traces"]
        parts += [f"{h.unresolved_frames:,} unresolved frames", f"{h.short_stacks:,} short stacks"]
        if h.unmerged_samples:
            parts.append(f"{h.unmerged_samples:,} samples without their Python stack")

        # One line; on a narrow budget it wraps, continuation lines indented under it.
        line = "\n".join(textwrap.wrap("health: " + ", ".join(parts), WIDTH, subsequent_indent="        ",
                                       break_long_words=False, break_on_hyphens=False))
        warnings = []
        if h.incomplete_capture:
            warnings.append("the capture is incomplete (the recording was interrupted)")
        if h.lost_chunks:
            warnings.append(f"perf lost {h.lost_chunks:,} chunks of events while recording "
                            f"(lower the frequency or stack_size)")
        if h.lost_events:
            warnings.append(f"{h.lost_events:,} trace events were lost")
        if h.truncated_traces:
            warnings.append(f"{h.truncated_traces:,} trace files are cut short or damaged")
        if h.samples and h.short_stacks * 10 > h.samples:
            warnings.append(f"{100 * h.short_stacks // h.samples}% of the stacks are cut short "
                            f"(raise stack_size in the recording profile)")
        warnings += h.notes
        if warnings:
            text = textwrap.wrap("WARNING: " + "; ".join(warnings), WIDTH, subsequent_indent="         ",
                                 break_long_words=False, break_on_hyphens=False)
            line += "\n" + "\n".join(self._warn(t) for t in text)
        return line
