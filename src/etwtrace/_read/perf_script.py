# Runs inside `perf script -s` (perf's own embedded Python, whatever version perf was built
# with), never imported by etwtrace. perf unwinds and symbolizes every sample; this script only
# writes them out as JSON lines, interning modules, frames, stacks and event layouts (a
# program's samples share a few thousand stacks), one record per line:
#
#   {"m": [module id, "module path"]}                       a module (DSO), before its first use
#   {"y": [frame id, address, symbol, module id]}           a frame, before its first use
#   {"k": [stack id, [frame id, ...]]}                      a stack, leaf first, before its use
#   {"n": [layout id, event name, [field, ...]]}            an event layout, before its use
#   {"b": [[layout id, pid, tid, ns, cpu, stack id, value, ...], ...]}
#                                                           events, in perf's (time) order
#   {"z": {"events": N, "pids": [pid, ...]}}                last: what was written (read by
#                                                           the supervisor, not kept)
#
# These are the lines of the bundle's events.jsonl.gz between its header and its end line
# (etwtrace/_bundle.py, EVENTS_FORMAT version 2); etwtrace/_read/perf_data.py parses them.
# Events go out in batches: one json.dumps and one json.loads per few hundred events instead
# of one per event, the cost that dominated both ends. Addresses are absolute (as in the
# process); symbol is null where perf found none; stack id -1 is no stack.
import json
import sys

BATCH = 500
_modules = {}
_frames = {}
_stacks = {}
_layouts = {}
_batch = []
_pids = set()
_count = [0]
_out = sys.stdout
_write = _out.write
_dumps = json.dumps


def _module(name):
    index = _modules.get(name)
    if index is None:
        index = _modules[name] = len(_modules)
        _write(_dumps({"m": [index, name]}) + "\n")
    return index


def _stack(callchain):
    if not callchain:
        return -1
    ids = []
    frames = _frames
    for entry in callchain:
        sym = entry.get("sym")
        key = (entry.get("ip", 0), sym.get("name") if sym else None, entry.get("dso") or "[unknown]")
        frame = frames.get(key)
        if frame is None:
            frame = frames[key] = len(frames)
            _write(_dumps({"y": [frame, key[0], key[1], _module(key[2])]}) + "\n")
        ids.append(frame)
    key = tuple(ids)
    stack = _stacks.get(key)
    if stack is None:
        stack = _stacks[key] = len(_stacks)
        _write(_dumps({"k": [stack, ids]}) + "\n")
    return stack


def _flush():
    if _batch:
        _write(_dumps({"b": _batch}, default=repr) + "\n")
        del _batch[:]


def _emit(name, sample, fields, callchain):
    keys = tuple(fields)
    layout = _layouts.get((name, keys))
    if layout is None:
        layout = _layouts[(name, keys)] = len(_layouts)
        _write(_dumps({"n": [layout, name, list(keys)]}) + "\n")
    pid = sample.get("pid", -1)
    _pids.add(pid)
    row = [layout, pid, sample.get("tid", -1), sample.get("time", 0), sample.get("cpu", -1), _stack(callchain)]
    row.extend(fields.values())
    _batch.append(row)
    _count[0] += 1
    if len(_batch) >= BATCH:
        _flush()


def process_event(param_dict):
    sample = param_dict.get("sample", {})
    fields = {"InstructionPointer": sample.get("ip", 0), "Period": sample.get("period", 0)}
    callchain = param_dict.get("callchain")
    if not callchain and sample.get("ip"):
        callchain = [{"ip": sample["ip"], "sym": {"name": param_dict.get("symbol")} if param_dict.get("symbol") else None,
                      "dso": param_dict.get("dso")}]
    _emit(param_dict.get("ev_name", "?"), sample, fields, callchain)


def trace_unhandled(event_name, context, event_fields_dict, perf_sample_dict):
    callchain = event_fields_dict.get("common_callchain") or perf_sample_dict.get("callchain")
    fields = {k: v for k, v in event_fields_dict.items() if not k.startswith(("common_", "__"))}
    for key, value in list(fields.items()):
        if isinstance(value, (bytes, bytearray)):
            fields[key] = bytes(value).rstrip(b"\0").decode("utf-8", "replace")
    sample = perf_sample_dict.get("sample", {})
    name = perf_sample_dict.get("ev_name") or event_name.replace("__", ":", 1)
    _emit(name, sample, fields, callchain)


def trace_end():
    _flush()
    _write(_dumps({"z": {"events": _count[0], "pids": sorted(_pids)}}) + "\n")
    _out.flush()
