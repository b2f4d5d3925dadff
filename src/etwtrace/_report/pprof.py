"""pprof's gzipped profile.proto (go tool pprof, pprof -http, and the tools that read it).

One pprof sample per (pid, tid, stack) of the Profile, carrying a value for every metric of the
report (pprof's sample types; a sample has zero for the metrics it has no weight in):

* cpu: "samples"/"count", and "cpu"/"nanoseconds" (samples times the sampling period) when
  the period is known;
* offcpu: "offcpu"/"nanoseconds";
* instrumented: "wall"/"nanoseconds" (self time of the stack);
* calls: "calls"/"count".

Each frame is one pprof Function (name, system name, file, first line) and one Location with
a single Line, numbered frame number + 1 (pprof ids are nonzero). Sample locations are leaf
first, the reverse of our stacks. pid and tid are numeric labels and the thread name a string
label, so ``-tagfocus`` and ``-tagshow`` can pick threads.

The default sample type (what ``go tool pprof -top`` shows without ``-sample_index``) is the
report's metric: options.metric, else the first metric present (CPU time when it is known).
"""

import gzip

from .._errors import MissingDependency
from .profile import KERNEL, NATIVE, PYTHON

__all__ = ["MissingDependency", "build", "message_module", "sample_types", "write"]


def sample_types(profile, metrics):
    """[(metric, pprof type, pprof unit)], pprof's count type first as its convention asks."""
    types = []
    for metric in metrics:
        if metric == "cpu":
            types.append(("cpu", "samples", "count"))
            if profile.sample_period_ns:
                types.append(("cpu", "cpu", "nanoseconds"))
        elif metric == "offcpu":
            types.append(("offcpu", "offcpu", "nanoseconds"))
        elif metric == "instrumented":
            types.append(("instrumented", "wall", "nanoseconds"))
        elif metric == "calls":
            types.append(("calls", "calls", "count"))
    return types


def message_module():
    """The profile.proto message classes; MissingDependency when protobuf is not installed.
    A caller may call this before a long read to fail early."""
    try:
        from . import pprof_proto
    except ImportError as error:
        raise MissingDependency(
            f"the pprof format needs the protobuf package ({error}): pip install protobuf"
        ) from None
    return pprof_proto


def write(profile, out, options):
    message = build(profile, options, message_module())
    # mtime=0: the same profile always gives the same bytes
    out.write(gzip.compress(message.SerializeToString(), mtime=0))


class StringTable:
    def __init__(self):
        self.strings = [""]
        self.index = {"": 0}

    def __call__(self, text):
        number = self.index.get(text)
        if number is None:
            number = self.index[text] = len(self.strings)
            self.strings.append(text)
        return number


def build(profile, options, proto):
    """The perftools.profiles.Profile message of a Profile."""
    from .._version import __version__  # at call time: no import cycle with the package

    strings = StringTable()
    message = proto.Profile()
    metrics = [options.metric] if options.metric else profile.metrics
    types = sample_types(profile, metrics)
    for _metric, type_name, unit in types:
        message.sample_type.add(type=strings(type_name), unit=strings(unit))

    preferred = [i for i, (metric, _t, _u) in enumerate(types) if metric == metrics[0]] if metrics else []
    if preferred:
        # CPU time rather than the sample count, when the period makes it known
        message.default_sample_type = message.sample_type[preferred[-1]].type
    if profile.sample_period_ns and any(metric == "cpu" for metric, _t, _u in types):
        message.period_type.type = strings("cpu")
        message.period_type.unit = strings("nanoseconds")
        message.period = profile.sample_period_ns
    if profile.end_ns > profile.start_ns:
        message.duration_nanos = profile.end_ns - profile.start_ns
    message.comment.append(strings(f"etwtrace {__version__}"))
    if options.title or profile.source:
        message.comment.append(strings(options.title or profile.source))

    add_frames(profile, message, strings)
    add_samples(profile, message, strings, types)
    message.string_table.extend(strings.strings)
    return message


def mapping_name(frame):
    if frame.kind in (NATIVE, KERNEL) and frame.file:
        return frame.file
    return "[python]" if frame.kind == PYTHON else f"[{frame.kind}]"


def add_frames(profile, message, strings):
    # A mapping per module, marked as fully symbolized: without one pprof invents a mapping
    # and warns that the "main binary filename" is unavailable, and it would try to
    # symbolize our address-less locations itself.
    mappings = {}
    for number, frame in enumerate(profile.frames):
        module = mapping_name(frame)
        mapping = mappings.get(module)
        if mapping is None:
            mapping = mappings[module] = len(mappings) + 1
            message.mapping.add(id=mapping, filename=strings(module), has_functions=True,
                                has_filenames=True, has_line_numbers=True)
        ident = number + 1
        # The system name is the flame graph's label: it keeps a native symbol's module, so
        # two modules' symbols of one name stay apart in ``-raw``.
        message.function.add(id=ident, name=strings(frame.name), system_name=strings(frame.label),
                             filename=strings(frame.file), start_line=frame.line)
        location = message.location.add(id=ident, mapping_id=mapping)
        location.line.add(function_id=ident, line=frame.line)


def add_samples(profile, message, strings, types):
    """One sample per (pid, tid, stack), in that order, with all metrics' values."""
    value_count = len(types)
    columns = {}  # metric -> [(column, scale)]
    for column, (metric, type_name, _unit) in enumerate(types):
        scale = profile.sample_period_ns if type_name == "cpu" else 1
        columns.setdefault(metric, []).append((column, scale))
    values = {}  # (pid, tid, stack) -> [value per sample type]
    for metric, metric_columns in columns.items():
        for key, weight in profile.weights.get(metric, {}).items():
            row = values.get(key)
            if row is None:
                row = values[key] = [0] * value_count
            for column, scale in metric_columns:
                row[column] += weight * scale
    pid_key, tid_key, thread_key = strings("pid"), strings("tid"), strings("thread")
    location_ids = {}  # stack -> leaf-first location ids, shared by the threads that have it
    for (pid, tid, stack), row in sorted(values.items()):
        if not any(row):
            continue
        ids = location_ids.get(stack)
        if ids is None:
            ids = location_ids[stack] = [frame + 1 for frame in reversed(profile.stacks[stack])]
        sample = message.sample.add(location_id=ids, value=row)
        sample.label.add(key=pid_key, num=pid)
        sample.label.add(key=tid_key, num=tid)
        thread = profile.threads.get((pid, tid))
        if thread:
            sample.label.add(key=thread_key, str=strings(thread))
