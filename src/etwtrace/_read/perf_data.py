"""A capture's perf.data, unwound and symbolized by `perf script` into events.

perf does the DWARF unwinding and symbolizing with the bundle's build-id cache
(`--buildid-dir PATH/buildid`), so stacks resolve the same after the bundle is moved or copied
to another machine; perf_script.py (run inside perf) prints one JSON line per event, parsed
here. Events: the etwtrace USDT probes -> upstream's Python events; sampled events (cpu-clock)
-> SampledProfile; sched:sched_switch -> CSwitch.
"""

import json
import os
import subprocess

from .. import _bundle
from .._errors import ReadError
from .._perf import INSTALL_HINT, perf_path
from .._schema import CSWITCH, MARK, PROBE_EVENT_NAMES, PROBE_GROUP_PREFIX, SAMPLED_PROFILE
from .events import Event, Frame, mark_opcode


def _perf_command():
    perf = perf_path()
    if not perf:
        raise ReadError(f"reading a capture's {_bundle.PERF_DATA} needs perf; {INSTALL_HINT}")
    return perf


def _event_from_perf(name, pid, tid, ts, cpu, fields, stack):
    group, _, event = name.partition(":")
    if event and (group.startswith(PROBE_GROUP_PREFIX) or group == "sdt_etwtrace"):
        # One uprobe event per probe site: function, function_1, ... are all `function`.
        base, _, suffix = event.rpartition("_")
        if base and suffix.isdigit():
            event = base
        upstream = PROBE_EVENT_NAMES.get(event)
        if upstream is None:
            return None
        opcode = None
        if upstream == "PythonThread":
            opcode = "Start" if fields.get("Start") else "Stop"
        elif upstream == "PythonMark":
            opcode = mark_opcode(fields.get("Kind", MARK))
        if "IsPythonCode" in fields:
            fields["IsPythonCode"] = bool(fields["IsPythonCode"])
        return Event(upstream, pid, tid, ts, fields, stack, opcode or "Info", cpu, "probe")
    if name == "sched:sched_switch":
        return Event(CSWITCH, pid, tid, ts, {
            "OldThreadId": fields.get("prev_pid"),
            "NewThreadId": fields.get("next_pid"),
            "OldThreadState": fields.get("prev_state"),
            "OldThreadPriority": fields.get("prev_prio"),
            "NewThreadPriority": fields.get("next_prio"),
            "OldProcessName": fields.get("prev_comm"),
            "NewProcessName": fields.get("next_comm"),
        }, stack, cpu=cpu, source="perf")
    if name == "dummy" or name.startswith("dummy"):
        return None
    short = name.split("/", 1)[0] if "/" in name else name
    fields = dict(fields)
    fields["Event"] = short
    fields["ThreadId"] = tid
    return Event(SAMPLED_PROFILE, pid, tid, ts, fields, stack, cpu=cpu, source="perf")


def read_perf_data(path, perf=None):
    """Events of PATH/perf.data (unsorted: perf orders them per its own rules)."""
    bundle = _bundle.Bundle(path)
    data = bundle.perf_data
    if not os.path.exists(data):
        return []
    perf = perf or _perf_command()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "perf_script.py")
    command = [perf, "--buildid-dir", bundle.buildid_dir, "script", "-f", "-i", data,
               "-s", script, "--no-inline"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=bundle.path)
    modules = {}
    events = []
    loads = json.loads
    for raw in proc.stdout:
        if not raw.startswith(b"{"):
            continue
        try:
            record = loads(raw)
        except ValueError:
            continue
        if "m" in record:
            index, module = record["m"]
            modules[index] = module
            continue
        stack = [Frame(ip, sym, modules.get(mod)) for ip, sym, mod in record["s"]]
        event = _event_from_perf(record["e"], record["p"], record["t"], record["ts"], record["c"],
                                 record["f"], stack)
        if event is not None:
            events.append(event)
    err = proc.stderr.read().decode(errors="replace")
    proc.wait()
    if proc.returncode != 0 and not events:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        raise ReadError(f"perf script could not read {data} ({lines[-1] if lines else proc.returncode})")
    return events
