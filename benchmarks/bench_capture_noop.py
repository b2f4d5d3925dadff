"""Wall time of a whole `--capture` of a no-op script: python benchmarks/bench_capture_noop.py [--python PY ...]

Each interpreter (default: the one running this script; pass --python several times, each with
its own etwtrace installed, e.g. two venvs to compare two builds) runs
`PY -m etwtrace --capture DIR -- noop.py` (a script that is just `pass`) --runs times,
interleaved so that load drift hits each alike, and the median wall time, the manifest's
`record_s` and `finish_s`, the bundle's size, the largest RSS of any process of the capture
(GNU time's %M) and the number of uprobe events registered are printed. Needs perf, as root for
the probes. Not a timed test: run it by hand, on a machine as quiet as you can get.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def capture_once(python, work):
    cap = os.path.join(work, "cap")
    shutil.rmtree(cap, ignore_errors=True)
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", python, "-m", "etwtrace", "--capture", cap, "--",
                           os.path.join(work, "noop.py")], capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"the capture with {python} failed (exit status {proc.returncode}):\n{proc.stderr}")
    with open(os.path.join(cap, "manifest.json")) as f:
        manifest = json.load(f)
    timings = manifest["timings"]
    probes = sum((manifest["perf"] or {}).get("probes", {}).values())
    return (wall, timings["record_s"], timings["finish_s"], manifest["size_bytes"],
            int(proc.stderr.strip().splitlines()[-1]), probes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter with etwtrace installed (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("/usr/bin/time"):
        sys.exit("this benchmark needs GNU time (/usr/bin/time): apt-get install time")
    pythons = args.python or [sys.executable]
    results = {py: [] for py in pythons}
    with tempfile.TemporaryDirectory(prefix="etwtrace-bench-") as work:
        with open(os.path.join(work, "noop.py"), "w") as f:
            f.write("pass\n")
        for run in range(args.runs):
            for py in pythons:
                results[py].append(capture_once(py, work))
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{results[py][-1][0]:.2f} s" for py in pythons)
                  + f" (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    print("| python | wall s, median (runs) | record_s | finish_s | bundle | max RSS | probe events |")
    print("|---|---|---|---|---|---|---|")
    for py, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        runs = ", ".join(f"{row[0]:.2f}" for row in rows)
        print(f"| {py} | {med[0]:.2f} ({runs}) | {med[1]:.2f} | {med[2]:.2f} | {med[3] / 1e3:.0f} kB "
              f"| {med[4] / 1e3:.0f} MB | {med[5]:.0f} |")


if __name__ == "__main__":
    main()
