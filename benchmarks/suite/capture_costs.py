"""The throughput and cost of a capture, per CPython: `report` against `perf script` on the same
stack-mode capture, and the C++ reader's decode rate on an instrumented trace. (The capture
size per second and the post-processing time of every mode are columns of the main table.)"""

import os
import shutil
import subprocess
import time

from . import measure, tools

REPORT_WORKLOAD = "raytrace"


def timed(argv, env=None):
    started = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise measure.RunFailed(f"{argv[0]} {argv[1:3]}: exit status {proc.returncode}: "
                                f"{proc.stderr.strip().splitlines()[-1:] or ''}"[:300])
    return time.perf_counter() - started


def report_vs_perf_script(env, scale):
    """Seconds of `perf script` alone on a capture's perf.data (the floor of any reader of it),
    of `report` from the capture's events file, and of `report` with that file moved aside
    (so through perf script itself)."""
    perf = shutil.which("perf")
    if not perf:
        return {"skipped": "perf is not installed"}
    tool = tools.Tool("capture (perf.data kept)", "etwtrace",
                      tools.prefix("{py}", "-m", "etwtrace", "--stack", "--quiet", "--keep-perf-data",
                                   "--capture", "{out}/capture", "--"))
    figures = {}

    def keep(out, inner):
        capture = os.path.join(out, "capture")
        figures["samples"] = tools.capture_samples(out, env)
        figures["traced_seconds"] = inner["elapsed"]
        figures["perf_script_s"] = timed([perf, "--buildid-dir", os.path.join(capture, "buildid"), "script",
                                          "-i", os.path.join(capture, "perf.data")])
        report = [env.python, "-m", "etwtrace", "report", capture]
        figures["report_s"] = timed(report)
        events = os.path.join(capture, "events.jsonl.gz")
        os.replace(events, events + ".aside")
        figures["report_via_perf_script_s"] = timed(report)

    run = measure.run_once(env, tool, REPORT_WORKLOAD, scale, keep=keep)
    figures["capture_wall_s"] = run["wall"]
    figures["capture_post_s"] = run["post"]
    figures["workload"] = REPORT_WORKLOAD
    return figures


DECODE = ("import json, sys; from etwtrace import _etwtrace as n; "
          "events, seconds = n._trace_decode_rate(sys.argv[1], 3); "
          "print(json.dumps({'events': events, 'seconds': seconds, "
          "'lost': n._trace_info(n._read_trace(sys.argv[1]))['lost_events']}))")


def decode_rate(env, scale):
    """Events per second of the C++ reader on the instrumented trace of fib, and the trace's
    events and bytes per second of tracing."""
    import json

    tool = tools.by_name("etwtrace instrumented")
    figures = {"workload": "fib"}

    def keep(out, inner):
        traces = [name for name in os.listdir(out) if name.endswith(".etwtrace")]
        if len(traces) != 1:
            raise measure.RunFailed(f"expected one trace file, found {traces}")
        path = os.path.join(out, traces[0])
        proc = subprocess.run([env.python, "-c", DECODE, path], capture_output=True, text=True, check=True)
        decoded = json.loads(proc.stdout)
        figures.update(events=decoded["events"], lost_events=decoded["lost"],
                       decode_events_per_s=decoded["events"] / decoded["seconds"],
                       trace_bytes=os.path.getsize(path), traced_seconds=inner["elapsed"],
                       events_per_traced_s=decoded["events"] / inner["elapsed"],
                       bytes_per_event=os.path.getsize(path) / max(1, decoded["events"]))

    measure.run_once(env, tool, "fib", scale, keep=keep)
    return figures
