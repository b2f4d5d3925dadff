"""The Markdown form of a results dict (run.py writes both): per CPython, the ratio table
(tools x workloads), the per-tool summary (callgrind, RSS, post-processing, capture size,
samples that arrived), the capture costs, and every skip with its reason."""

import math
import statistics


def fmt(value, digits=2, suffix=""):
    if value is None:
        return "—"
    return f"{value:.{digits}f}{suffix}"


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def in_table_order(names):
    """`names` in the tool table's order (a merged file may have added some later)."""
    from . import tools

    order = {tool.name: i for i, tool in enumerate(tools.TOOLS)}
    return sorted(names, key=lambda name: order.get(name, len(order)))


def tool_rows(version_result):
    return in_table_order([name for name, info in version_result["tools"].items() if "skipped" not in info])


def ratio_table(vr, workloads):
    lines = ["| tool | " + " | ".join(workloads) + " | geo. mean | spread |",
             "|---|" + "---|" * (len(workloads) + 2)]
    base = vr["runs"]
    for name in tool_rows(vr):
        cells, spreads = [], []
        for w in workloads:
            cell = base.get(w, {}).get(name)
            if not cell or "ratio" not in cell:
                cells.append("failed" if cell and cell.get("failed") else "—")
                continue
            cells.append(fmt(cell["ratio"]))
            spreads.append(cell["spread"])
        g = geomean([base[w][name]["ratio"] for w in workloads if "ratio" in base.get(w, {}).get(name, {})])
        spread = f"±{100 * max(spreads) / 2:.0f}%" if spreads else "—"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(g)} | {spread} |")
    return lines


def summary_table(vr, workloads):
    lines = ["| tool | CPU-time ratio (geo. mean) | instructions per fib call (over untraced) | peak RSS MB (fib) | "
             "post-processing s (median) | output MB per traced s (median) | samples arrived / requested (median) |",
             "|---|---|---|---|---|---|---|"]
    calls = vr.get("callgrind", {})
    base_calls = calls.get("untraced", {}).get("per_call")
    for name in tool_rows(vr):
        c = calls.get(name, {})
        if "per_call" in c:
            over = c["per_call"] - base_calls if base_calls is not None else None
            instr = f"{c['per_call']:.0f} ({over:+.0f})" if over is not None else f"{c['per_call']:.0f}"
        else:
            instr = "n/a" if c.get("skipped") else "—"
        cells = [vr["runs"][w].get(name, {}) for w in workloads if w in vr["runs"]]
        ok = [c for c in cells if "median_s" in c]
        fib = vr["runs"].get("fib", {}).get(name, {})
        post = statistics.median([c["post_s"] for c in ok]) if ok else None
        rate = statistics.median([c["output_mb_per_s"] for c in ok]) if ok else None
        fractions = [c["sample_fraction"] for c in ok if c.get("sample_fraction") is not None]
        fraction = fmt(statistics.median(fractions)) if fractions else "—"
        cpu = fmt(geomean([c["cpu_ratio"] for c in ok if "cpu_ratio" in c]))
        lines.append(f"| {name} | {cpu} | {instr} | {fmt(fib.get('rss_mb'), 0)} | {fmt(post)} | {fmt(rate, 2)} | "
                     f"{fraction} |")
    return lines


def skips(vr):
    out = []
    for name, info in vr["tools"].items():
        if "skipped" in info:
            out.append(f"* {name}: skipped: {info['skipped']}")
    for name, info in vr.get("callgrind", {}).items():
        if "skipped" in info and "skipped" not in vr["tools"].get(name, {}):
            out.append(f"* {name}: no instruction count: {info['skipped']}")
    for w, cells in vr["runs"].items():
        for name, cell in cells.items():
            if cell.get("failed"):
                out.append(f"* {name} on {w}: failed: {cell['failed']}")
            elif cell.get("failed_runs"):
                out.append(f"* {name} on {w}: {cell['failed_runs']} run(s) failed and were run again")
    return out


def capture_lines(vr):
    cc = vr.get("capture_costs", {})
    lines = []
    r = cc.get("report", {})
    if "report_s" in r:
        lines.append(f"* `report` vs `perf script` on one stack capture of {r['workload']} "
                     f"({r['samples']:,} CPU samples, {r['traced_seconds']:.2f} s traced): `perf script` "
                     f"{r['perf_script_s']:.2f} s; `report` {r['report_s']:.2f} s from the capture's events file "
                     f"({r['report_s'] / r['perf_script_s']:.2f}x), {r['report_via_perf_script_s']:.2f} s through "
                     f"perf.data ({r['report_via_perf_script_s'] / r['perf_script_s']:.2f}x); the capture took "
                     f"{r['capture_post_s']:.2f} s after the program's work ended.")
    elif r:
        lines.append(f"* `report` vs `perf script`: {r.get('skipped') or r.get('failed')}")
    d = cc.get("decode", {})
    if "decode_events_per_s" in d:
        lines.append(f"* Instrumented trace of fib: {d['events']:,} events ({d['lost_events']} lost), "
                     f"{d['events_per_traced_s'] / 1e6:.1f} M events and "
                     f"{d['trace_bytes'] / d['traced_seconds'] / 1e6:.0f} MB per traced second "
                     f"({d['bytes_per_event']:.1f} bytes/event); the C++ reader decodes "
                     f"{d['decode_events_per_s'] / 1e6:.1f} M events/s.")
    elif d:
        lines.append(f"* decode rate: {d.get('skipped') or d.get('failed')}")
    idle = vr.get("idle")
    if idle:
        lines.append(f"* etwtrace loaded but not tracing: {idle}")
    return lines


def across_versions(results):
    """Tools x CPythons: the geometric mean of the ratios over the workloads, fib's ratio, and
    callgrind's instructions per fib call over untraced."""
    versions = {v: vr for v, vr in results["versions"].items() if "runs" in vr}
    names = []
    for vr in versions.values():
        names += [n for n in vr["tools"] if n not in names]
    names = in_table_order(names)
    head = " | ".join(f"{v} all / fib / instr." for v in versions)
    lines = [f"| tool | {head} |", "|---|" + "---|" * len(versions)]
    for name in names:
        cells = []
        for v, vr in versions.items():
            if "skipped" in vr["tools"].get(name, {"skipped": "-"}):
                cells.append("n/a")
                continue
            ratios = [c[name]["ratio"] for c in vr["runs"].values() if "ratio" in c.get(name, {})]
            fib = vr["runs"].get("fib", {}).get(name, {}).get("ratio")
            calls = vr.get("callgrind", {})
            if "per_call" in calls.get(name, {}) and "per_call" in calls.get("untraced", {}):
                instr = f"{calls[name]['per_call'] - calls['untraced']['per_call']:+.0f}"
            else:
                instr = "—"
            cells.append(f"{fmt(geomean(ratios))} / {fmt(fib)} / {instr}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(results):
    meta = results["meta"]
    out = [f"# etwtrace benchmark results {meta['date']}", "",
           f"commit `{meta['commit']}`, `{meta['command']}`; {meta['machine']}.", "",
           "Ratios are the workload's own time (measured inside the process, so without start-up and "
           "post-processing) traced / untraced: the median of the interleaved rounds (their number under each CPython), "
           "ratios within this run. *spread* is half the largest (max-min)/median of the tool's runs over the "
           "workloads. The CPU-time ratio is the same for the work's CPU time (all threads), steadier on a loaded machine "
           "but blind to a sampler pausing the target from outside. Instructions per call are callgrind counts of fib(20) minus fib(16) over the calls' "
           "difference. Post-processing is from the end of the work to the process's exit (untraced: interpreter "
           "shut-down). Output is everything the tool wrote (trace, capture, profile, perf map, jitdump). "
           "Samplers are asked for ~1 kHz (perf: 999 Hz; etwtrace's sampler also at its default 100 Hz); arrived / requested counts samples against the rate times "
           "the time from the start to the end of the work: wall time (the samples in the whole output: py-spy's "
           "and Austin's carry no time), or for CPU-time samplers (perf's cpu-clock, etwtrace's sampler) the CPU "
           "time of the program's own threads during the work, against the samples timed within it; threads "
           "sampled separately count separately.", "",
           "## Every CPython: geometric mean over the workloads / fib / instructions per fib call over untraced", ""]
    out += across_versions(results) + [""]
    for version, vr in results["versions"].items():
        workloads = [w for w in results["meta"]["workloads"] if w in vr.get("runs", {})]
        rounds = max((c.get("reps", 0) for cells in vr["runs"].values() for c in cells.values()), default=0)
        out += [f"## CPython {vr['python_version']}", "", f"Traced / untraced (median of {rounds} rounds):", ""]
        out += ratio_table(vr, workloads)
        out += ["", "Untraced seconds: " + ", ".join(
            f"{w} {vr['runs'][w]['untraced']['median_s']:.3f}" for w in workloads
            if 'median_s' in vr['runs'][w].get('untraced', {})), ""]
        out += summary_table(vr, workloads) + [""]
        out += capture_lines(vr)
        s = skips(vr)
        if s:
            out += ["", "Not measured:"] + s
        out.append("")
    return "\n".join(out) + "\n"
