"""The benchmark suite: the same workloads on each CPython, untraced and under etwtrace's modes,
CPython's own perf support and every peer profiler, in one table.

    python3 benchmarks/run.py [--versions 3.9,...,3.13] [--reps N] [--quick] [--output PREFIX]

For each CPython it makes (or updates) build/bench/venv-X.Y with etwtrace from this checkout and
the peers from PyPI (a peer that cannot be installed there is skipped with pip's reason), then
runs every workload under every tool in a fresh process, the repetitions interleaved (a round
runs every tool once, in a rotated order), and takes medians. Then callgrind instruction counts
per fib call, the capture costs (report vs perf script, the trace decoder's rate), and writes
PREFIX.json and PREFIX.md (default benchmarks/results/<date>-<commit>). --quick: one CPython
(3.12 unless --versions), five workloads at a third of their size, one round, small callgrind
runs: a few minutes. --current: the interpreter running this script as it is, no venv.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from suite import capture_costs, callgrind, envs, measure, render, tools  # noqa: E402
from workloads import NAMES, KINDS  # noqa: E402

QUICK_WORKLOADS = ["fib", "raytrace", "cext", "threaded", "asyncio"]
# A sampler that attaches from outside can miss a tiny probe entirely (py-spy --native: "Failed
# to get process executable name" once the target has exited), so a failed probe is tried
# again on a workload that lives long enough to attach to.
PROBE_SCALES = (0.02, 1.0, 1.0)


def log(message):
    print(message, flush=True)


def availability(env, tool):
    """None if the tool can run in this environment, else why not."""
    if env.version_info < tool.since:
        return f"needs CPython {'.'.join(map(str, tool.since))}+"
    if tool.needs:
        if tool.needs in env.problems:
            return env.problems[tool.needs]
        if tool.needs not in envs.PEERS:
            ok, why = envs.works(env, tool.needs)
            if not ok:
                return why or f"{tool.needs} is missing"
    for scale in PROBE_SCALES:
        try:
            measure.run_once(env, tool, "fib", scale)
            return None
        except measure.RunFailed as e:
            failure = e
    return f"does not run here: {failure}"


def summarize(runs, base, tool, base_cpu=None):
    times = [r["elapsed"] for r in runs]
    median = statistics.median(times)
    cell = {"median_s": median, "min_s": min(times), "max_s": max(times),
            "spread": (max(times) - min(times)) / median if median else 0.0, "reps": len(runs),
            "rss_mb": statistics.median(r["rss_mb"] for r in runs),
            "post_s": statistics.median(r["post"] for r in runs),
            "wall_s": statistics.median(r["wall"] for r in runs),
            "output_bytes": statistics.median(r["output_bytes"] for r in runs),
            "output_mb_per_s": statistics.median(r["output_bytes"] / r["elapsed"] / 1e6 for r in runs)}
    if base:
        cell["ratio"] = median / base
    # The work's CPU time is far steadier than its wall time on a loaded machine, but it sees only
    # what the tool costs inside the target (not a sampler pausing it from outside).
    cpu = [r["work_cpu"] for r in runs if r.get("work_cpu") is not None]
    if cpu and base_cpu:
        cell["cpu_ratio"] = statistics.median(cpu) / base_cpu
    if tool.rate:
        # Requested: the rate over the time from the start to the end of the work (a sampler is
        # not asked to sample the post-processing): wall time, or for a CPU-time sampler the CPU
        # time of the program's threads during the work (its samples are counted over the same
        # span, and a tool's own helper threads are not the program's).
        def requested(r):
            return tool.rate * (r["program_cpu"] if tool.clock == "cpu" else r["wall"] - r["post"])

        fractions = [r["samples"] / requested(r) for r in runs if "samples" in r]
        cell["sample_fraction"] = statistics.median(fractions) if fractions else None
        cell["samples"] = statistics.median(r["samples"] for r in runs) if fractions else None
    return cell


def bench_version(env, args, workloads):
    vr = {"python": env.python, "python_version": subprocess.run(
        [env.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True).stdout.strip(), "tools": {}, "runs": {}, "callgrind": {}}
    active = []
    for tool in tools.TOOLS:
        if args.tools and tool.name not in args.tools:
            continue
        why = availability(env, tool)
        vr["tools"][tool.name] = dict(tools.json_safe(tool), **({"skipped": why} if why else {}))
        if why:
            log(f"  {tool.name}: skipped: {why}")
        else:
            active.append(tool)
    samples = {w: {t.name: [] for t in active} for w in workloads}
    failures = {w: {} for w in workloads}
    retried = {w: {} for w in workloads}
    for rep in range(0 if args.callgrind_only else args.reps):
        started = time.monotonic()
        for w in workloads:
            order = active[rep % len(active):] + active[:rep % len(active)]
            for tool in order:
                if tool.name in failures[w]:
                    continue
                # A peer's own start-up race (Austin's "cannot discover" on a child not yet
                # running Python) fails one run, not the tool: one retry, counted.
                for attempt in (1, 2):
                    try:
                        samples[w][tool.name].append(measure.run_once(env, tool, w, args.scale))
                        break
                    except measure.RunFailed as e:
                        retried[w][tool.name] = retried[w].get(tool.name, 0) + 1
                        log(f"  {tool.name} on {w}: failed (attempt {attempt}): {e}")
                        if attempt == 2:
                            failures[w][tool.name] = str(e)
        log(f"  round {rep + 1}/{args.reps}: {time.monotonic() - started:.0f} s")
    for w in workloads:
        base_runs = samples[w].get("untraced")
        base = statistics.median(r["elapsed"] for r in base_runs) if base_runs else None
        base_cpu = statistics.median(r["work_cpu"] for r in base_runs) if base_runs else None
        vr["runs"][w] = {}
        for tool in active:
            if samples[w][tool.name]:
                vr["runs"][w][tool.name] = summarize(samples[w][tool.name], base, tool, base_cpu)
            else:
                vr["runs"][w][tool.name] = {"failed": failures[w].get(tool.name, "no run")}
            if retried[w].get(tool.name):
                vr["runs"][w][tool.name]["failed_runs"] = retried[w][tool.name]
    if not args.callgrind_only:
        print_ratios(vr, workloads)
    if not args.no_callgrind:
        sizes = (12, 15) if args.quick else callgrind.SIZES
        for tool in active:
            if tool.callgrind:
                vr["callgrind"][tool.name] = {"skipped": tool.callgrind}
                continue
            try:
                per_call = callgrind.per_call(env, tool, sizes)
                vr["callgrind"][tool.name] = {"per_call": per_call, "sizes": list(sizes)}
                log(f"  callgrind {tool.name}: {per_call:.0f} instructions per fib call")
            except (measure.RunFailed, subprocess.TimeoutExpired) as e:
                vr["callgrind"][tool.name] = {"skipped": f"failed: {e}"}
                log(f"  callgrind {tool.name}: failed: {e}")
    if not args.no_capture_costs and not args.callgrind_only:
        costs = {}
        for key, fn in (("report", capture_costs.report_vs_perf_script), ("decode", capture_costs.decode_rate)):
            try:
                costs[key] = fn(env, args.scale)
            except (measure.RunFailed, subprocess.CalledProcessError) as e:
                costs[key] = {"failed": str(e)}
        vr["capture_costs"] = costs
        for line in render.capture_lines(vr):
            log("  " + line[2:])
    if args.callgrind_only:
        vr["runs"] = {}
    vr["idle"] = idle_summary(vr, workloads)
    return vr


def idle_summary(vr, workloads):
    name = "etwtrace loaded, idle"
    ratios = [vr["runs"][w][name]["ratio"] for w in workloads if "ratio" in vr["runs"].get(w, {}).get(name, {})]
    text = (f"time ratio {min(ratios):.2f}-{max(ratios):.2f} over the workloads (geometric mean "
            f"{render.geomean(ratios):.3f})" if ratios else "")
    calls = vr.get("callgrind", {})
    c, u = calls.get(name, {}), calls.get("untraced", {})
    if "per_call" in c and "per_call" in u:
        text += f"; {c['per_call'] - u['per_call']:+.1f} instructions per fib call against untraced"
    return text.lstrip("; ") or None


def print_ratios(vr, workloads):
    log(f"\nCPython {vr['python_version']}: traced / untraced (median; spread = (max-min)/median of the tool's runs)")
    width = max(len(n) for n in vr["tools"]) + 2
    log(" " * width + "".join(f"{w[:9]:>10}" for w in workloads))
    for name in render.tool_rows(vr):
        cells = []
        for w in workloads:
            c = vr["runs"][w].get(name, {})
            cells.append(f"{c['ratio']:>6.2f}±{100 * c['spread'] / 2:<3.0f}" if "ratio" in c else f"{'fail':>10}")
        log(f"{name:<{width}}" + "".join(cells))


def git(*args):
    return subprocess.run(["git", "-C", str(envs.ROOT), *args], capture_output=True, text=True).stdout.strip()


def write(prefix, results):
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{prefix}.json", "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    with open(f"{prefix}.md", "w") as f:
        f.write(render.markdown(results))


def merge_tools(into, vr):
    """A later run's measured cells replace an earlier run's (a run of a few tools, made to
    complete or redo them); each keeps the ratio of its own run (to that run's untraced), and
    the earlier run's untraced stays. A later run that skipped a tool or did not run it (a
    --callgrind-only run has no rounds) changes nothing of it."""
    tools_into = into.setdefault("tools", {})
    runs_into = into.setdefault("runs", {})
    for name, info in vr.get("tools", {}).items():
        if name not in tools_into or ("skipped" in tools_into[name] and "skipped" not in info):
            tools_into[name] = info
    for w, cells in vr.get("runs", {}).items():
        cells_into = runs_into.setdefault(w, {})
        for name, cell in cells.items():
            if name not in cells_into or (name != "untraced" and "failed" not in cell):
                cells_into[name] = cell
                if "skipped" in tools_into.get(name, {}) and name in vr.get("tools", {}):
                    tools_into[name] = vr["tools"][name]


def merge(parser, args):
    """One result from several (the CPythons measured by separate runs, e.g. two at a time)."""
    if not args.output:
        parser.exit(2, "run.py: --merge needs --output PREFIX\n")
    combined = None
    for path in args.merge:
        try:
            with open(path) as f:
                part = json.load(f)
        except (OSError, ValueError) as e:
            parser.exit(2, f"run.py: cannot read {path}: {e}\n")
        if combined is None:
            combined = part
            combined["meta"]["command"] = [part["meta"]["command"]]
            commits = [part["meta"]["commit"]]
        else:
            combined["meta"]["command"].append(part["meta"]["command"])
            if part["meta"]["commit"] not in commits:
                commits.append(part["meta"]["commit"])
            for version, vr in part["versions"].items():
                # A version measured by several runs: each run's non-empty parts (e.g. a timing
                # run's rounds and a --callgrind-only run's counts) go into one entry.
                into = combined["versions"].setdefault(version, {})
                merge_tools(into, vr)
                into.setdefault("callgrind", {}).update(vr.get("callgrind", {}))
                into.update({key: value for key, value in vr.items()
                             if value and key not in ("tools", "runs", "callgrind")})
    combined["meta"]["command"] = "; ".join(combined["meta"]["command"])
    combined["meta"]["commit"] = ", ".join(commits)
    combined["versions"] = dict(sorted(combined["versions"].items(), key=lambda kv: tuple(map(int, kv[0].split(".")))))
    for vr in combined["versions"].values():
        if "runs" in vr:
            vr["idle"] = idle_summary(vr, combined["meta"]["workloads"])
    write(args.output, combined)
    log(f"wrote {args.output}.json and {args.output}.md")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", help="comma-separated CPython versions (default: 3.9,...,3.13)")
    parser.add_argument("--current", action="store_true", help="benchmark the running interpreter as it is")
    parser.add_argument("--reps", type=int, help="interleaved rounds (default 5, --quick 1)")
    parser.add_argument("--scale", type=float, help="workload size factor (default 1, --quick 0.3)")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ",".join(NAMES))
    parser.add_argument("--tools", help="comma-separated subset of the tool names (untraced is always added)")
    parser.add_argument("--quick", action="store_true", help="a few minutes: see above")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--callgrind-only", action="store_true",
                        help="only the instruction counts (they do not depend on the machine's load, so they "
                             "can run beside a timing run and be merged into it with --merge)")
    parser.add_argument("--no-capture-costs", action="store_true", help="skip report-vs-perf-script and decoding")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine result files of runs over different CPythons into --output PREFIX")
    parser.add_argument("--output", help="write PREFIX.json and PREFIX.md (default benchmarks/results/<date>-<commit>)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(parser, args)
    args.reps = args.reps or (1 if args.quick else 5)
    args.scale = args.scale or (0.3 if args.quick else 1.0)
    workloads = args.workloads.split(",") if args.workloads else (QUICK_WORKLOADS if args.quick else NAMES)
    unknown = [w for w in workloads if w not in NAMES]
    if unknown:
        parser.exit(2, f"run.py: unknown workload {', '.join(unknown)}; choose from {', '.join(NAMES)}\n")
    if args.tools:
        # Commas separate names, but a comma followed by a space belongs to one ("etwtrace loaded, idle").
        args.tools = set(re.split(r",(?! )", args.tools)) | {"untraced"}
        unknown = args.tools - {t.name for t in tools.TOOLS}
        if unknown:
            parser.exit(2, f"run.py: unknown tool {', '.join(sorted(unknown))}; the tools are: "
                           f"{', '.join(t.name for t in tools.TOOLS)}\n")
    if args.reps < 1 or args.scale <= 0:
        parser.exit(2, "run.py: --reps must be at least 1 and --scale positive\n")
    versions = args.versions.split(",") if args.versions else (["3.12"] if args.quick else
                                                                ["3.9", "3.10", "3.11", "3.12", "3.13"])
    commit = git("rev-parse", "--short=10", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "src",
                                                                          "benchmarks") else "")
    date = datetime.date.today().isoformat()
    prefix = args.output or str(envs.ROOT / "benchmarks" / "results" / f"{date}-{commit}")
    if not args.output and (os.path.exists(prefix + ".json") or os.path.exists(prefix + ".md")):
        parser.exit(2, f"run.py: {prefix}.json already exists; pass --output PREFIX to write elsewhere\n")
    (envs.BENCH / "tmp").mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    results = {"meta": {
        "date": date, "commit": commit,
        "command": "python3 benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} Linux {platform.release()}, {os.cpu_count()} CPUs, load average "
                   f"{load[0]:.1f} at the start",
        "reps": args.reps, "scale": args.scale, "workloads": workloads,
        "kinds": {w: KINDS[w] for w in workloads},
        "tools": {t.name: tools.json_safe(t) for t in tools.TOOLS}}, "versions": {}}
    environments = [("current", lambda: envs.current(log))] if args.current else [
        (v, lambda v=v: envs.prepare(v, log)) for v in versions]
    for label, make in environments:
        env = make()
        if env is None:
            results["versions"][label] = {"skipped": "not installed"}
            continue
        log(f"CPython {env.version} ({env.python})")
        results["versions"][env.version] = bench_version(env, args, workloads)
        write(prefix, results)
    results["versions"] = {k: v for k, v in results["versions"].items() if "skipped" not in v} or results["versions"]
    write(prefix, results)
    log(f"\nwrote {prefix}.json and {prefix}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
