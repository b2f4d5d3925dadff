"""What every event is called and carries: one table shared by recording and reading.

Upstream's event names and fields, the USDT probe that fires each (probes/probes.h, in its
argument order and types), and the mark kinds (`format::MarkKind` in format/trace_format.h).
The capture's probe registration, its recording profiles and the readers all take their names
from here.
"""

# Mark kinds: write_mark(text, kind); values as in format::MarkKind.
MARK = 0
RANGE_START = 1
RANGE_STOP = 2
STACK_SAMPLE = 3
# The opcode each kind shows as (PythonMark Info/Start/Stop; PythonStackSample Info).
MARK_OPCODES = ("Info", "Start", "Stop", "Info")

# probe name -> (event name, ((field, tracefs type), ...)); "string" fields are pointers whose
# text is recorded.
PROBES = {
    "thread": ("PythonThread", (("ThreadId", "u64"), ("Start", "s32"))),
    "function": ("PythonFunction", (
        ("FunctionID", "u32"),
        ("BeginAddress", "u64"),
        ("EndAddress", "u64"),
        ("LineNumber", "s32"),
        ("SourceFile", "string"),
        ("Name", "string"),
        ("IsPythonCode", "s32"),
    )),
    "mark": ("PythonMark", (("Mark", "string"), ("Kind", "s32"))),
    "stack_sample": ("PythonStackSample", (("Mark", "string"),)),
    "function_push": ("PythonFunctionPush", (("FunctionID", "u32"), ("Caller", "u32"), ("CallerLine", "s32"))),
    "function_pop": ("PythonFunctionPop", (("FunctionID", "u32"),)),
}
PROBE_NAMES = tuple(PROBES)
PROBE_EVENT_NAMES = {probe: event for probe, (event, _fields) in PROBES.items()}
PROBE_FIELDS = {probe: fields for probe, (_event, fields) in PROBES.items()}
PYTHON_EVENTS = frozenset(PROBE_EVENT_NAMES.values())

# Events perf records (not ours): CPU samples and context switches.
SAMPLED_PROFILE = "SampledProfile"
CSWITCH = "CSwitch"

# The tracefs group of a capture's uprobe events: etwtrace_<launcher pid>.
PROBE_GROUP_PREFIX = "etwtrace_"
