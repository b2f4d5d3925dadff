# Runs inside `perf script -s` (perf's own embedded Python, whatever version perf was built
# with), never imported by etwtrace. perf unwinds and symbolizes every sample; this script only
# writes them out as JSON lines for etwtrace._perfdata, one event per line:
#
#   {"m": [index, "module path"]}                          a module (DSO), before its first use
#   {"e": name, "p": pid, "t": tid, "ts": ns, "c": cpu,
#    "f": {field: value}, "s": [[address, symbol, module index], ...]}   an event, stack leaf first
#
# Addresses are absolute (as in the process); symbol is null where perf found none.
import json
import sys

_modules = {}
_out = sys.stdout
_write = _out.write


def _module(name):
    index = _modules.get(name)
    if index is None:
        index = _modules[name] = len(_modules)
        _write(json.dumps({"m": [index, name]}) + "\n")
    return index


def _stack(callchain):
    frames = []
    for entry in callchain or ():
        sym = entry.get("sym")
        frames.append([entry.get("ip", 0), sym.get("name") if sym else None,
                       _module(entry.get("dso") or "[unknown]")])
    return frames


def _emit(name, sample, fields, callchain):
    record = {
        "e": name,
        "p": sample.get("pid", -1),
        "t": sample.get("tid", -1),
        "ts": sample.get("time", 0),
        "c": sample.get("cpu", -1),
        "f": fields,
        "s": _stack(callchain),
    }
    _write(json.dumps(record, default=repr) + "\n")


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
    _out.flush()
