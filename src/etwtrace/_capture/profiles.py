"""Recording profiles: named sections of an INI file saying what `perf record` collects.

The shipped file is profiles/python-perf.ini (printed by `python -m etwtrace --profile`); its
header documents every key. `load()` reads a file, `Profile.record_args()` turns a profile into
perf record event arguments once the capture knows which probe events exist.
"""

import configparser
import re
import shlex

from .._errors import ProfileError
from .._schema import PROBE_NAMES

DEFAULT_PROFILE = "Default"

_TRUE = ("yes", "true", "on", "1")
_FALSE = ("no", "false", "off", "0", "")


def _flag(section, key, default, where):
    value = section.get(key, default).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ProfileError(f"{where}: {key} must be yes or no, not {value!r}")


def _names(value):
    return [v.strip() for v in value.replace(",", " ").split() if v.strip()]


class Profile:
    def __init__(self, name, section, where):
        self.name = name
        self.description = section.get("description", "").strip()
        self.events = _names(section.get("events", ""))
        try:
            self.frequency = int(section.get("frequency", "999"))
            self.stack_size = int(section.get("stack_size", "8192"))
            self.switch_stack_size = int(section.get("switch_stack_size", str(self.stack_size)))
        except ValueError as ex:
            raise ProfileError(f"{where}: frequency, stack_size and switch_stack_size must be numbers ({ex})") from None
        self.call_graph = section.get("call_graph", "dwarf").strip().lower()
        if self.call_graph not in ("dwarf", "fp", "none"):
            raise ProfileError(f"{where}: call_graph must be dwarf, fp or none, not {self.call_graph!r}")
        if self.call_graph == "dwarf" and not (8 <= self.stack_size <= 65528 and self.stack_size % 8 == 0):
            raise ProfileError(f"{where}: stack_size must be a multiple of 8 between 8 and 65528")
        if self.call_graph == "dwarf" and not (8 <= self.switch_stack_size <= 65528 and self.switch_stack_size % 8 == 0):
            raise ProfileError(f"{where}: switch_stack_size must be a multiple of 8 between 8 and 65528")
        self.mmap_pages = section.get("mmap_pages", "").strip()
        if self.mmap_pages and not re.match(r"^\d+[KMG]?$", self.mmap_pages, re.I):
            raise ProfileError(f"{where}: mmap_pages must be a number of pages or a size such as 4M, "
                               f"not {self.mmap_pages!r}")
        self.keep_perf_data = _flag(section, "keep_perf_data", "no", where)
        self.context_switches = _flag(section, "context_switches", "no", where)
        probes = section.get("probes", "all").strip().lower()
        if probes in ("all", "yes"):
            self.probes = list(PROBE_NAMES)
        elif probes in ("none", "no", ""):
            self.probes = []
        else:
            self.probes = _names(probes)
            unknown = [p for p in self.probes if p not in PROBE_NAMES]
            if unknown:
                raise ProfileError(f"{where}: unknown probe {unknown[0]!r}; the probes are {', '.join(PROBE_NAMES)}")
        self.probe_stacks = _names(section.get("probe_stacks", "stack_sample"))
        self.require_tracefs = _flag(section, "require_tracefs", "no", where)
        try:
            self.extra_args = shlex.split(section.get("extra_args", ""))
        except ValueError as ex:
            raise ProfileError(f"{where}: extra_args cannot be split ({ex})") from None

    @property
    def needs_tracefs(self):
        return bool(self.probes) or self.context_switches

    def _call_graph_term(self, stack_size=None):
        if self.call_graph == "dwarf":
            return f"call-graph=dwarf,stack-size={stack_size or self.stack_size}"
        if self.call_graph == "fp":
            return "call-graph=fp"
        return "call-graph=no"

    def record_args(self, probe_events, tracefs, user_only=False):
        """perf record arguments for this profile (see _event_args), with its buffer size.

        mmap_pages is left out for a user without privileges: perf_event_mlock_kb (516 KiB)
        limits them, and perf's default is the most they may have.
        """
        args = []
        if self.mmap_pages and not user_only:
            args += ["-m", self.mmap_pages]
        return args + self._event_args(probe_events, tracefs, user_only)

    def _event_args(self, probe_events, tracefs, user_only=False):
        """perf record arguments for this profile.

        probe_events maps probe name -> perf event names, one per probe site (empty when probes
        are unavailable);
        tracefs says whether tracepoints (context switches) can be recorded.
        """
        args = []
        mod = "u" if user_only else ""  # user space only: what perf_event_paranoid 2 allows
        for event in self.events:
            if self.frequency > 0:
                args += ["-e", f"{event}/freq={self.frequency},{self._call_graph_term()}/{mod}"]
            else:
                args += ["-e", f"{event}/{self._call_graph_term()}/{mod}"]
        if self.context_switches and tracefs:
            args += ["-e", f"sched:sched_switch/{self._call_graph_term(self.switch_stack_size)}/"]
        # Probes with stacks first: perf script decides how to unwind (DWARF or not) from the
        # first event of the recording, so a stack-less event must not come first.
        ordered = sorted(self.probes, key=lambda name: name not in self.probe_stacks)
        for name in ordered:
            events = probe_events.get(name) or []
            if isinstance(events, str):
                events = [events]
            term = self._call_graph_term() if name in self.probe_stacks else "call-graph=no"
            for event in events:
                args += ["-e", f"{event}/{term}/"]
        if not any(a == "-e" for a in args):
            # Nothing to sample: the dummy event still records process, thread and mmap events.
            args += ["-e", "dummy"]
        return args + self.extra_args

    def to_dict(self):
        return {
            "name": self.name,
            "description": self.description,
            "events": self.events,
            "frequency": self.frequency,
            "call_graph": self.call_graph,
            "stack_size": self.stack_size,
            "switch_stack_size": self.switch_stack_size,
            "mmap_pages": self.mmap_pages,
            "keep_perf_data": self.keep_perf_data,
            "context_switches": self.context_switches,
            "probes": self.probes,
            "probe_stacks": self.probe_stacks,
        }


def read_file(path):
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    parser.optionxform = str.lower
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as ex:
        raise ProfileError(f"cannot read the profile file {path} ({ex.strerror}); give an existing file to --profile-file") from None
    except configparser.Error as ex:
        first = str(ex).splitlines()[0]
        raise ProfileError(f"the profile file {path} is not valid INI ({first}); see the shipped one (python -m etwtrace --profile)") from None
    return parser


def load(path=None, name=None):
    """The profile `name` (default: Default) from `path` (default: the shipped file)."""
    if path is None:
        import etwtrace

        path = etwtrace.get_profile_path()
    parser = read_file(path)
    name = name or DEFAULT_PROFILE
    sections = {s.lower(): s for s in parser.sections()}
    if name.lower() not in sections:
        known = ", ".join(parser.sections()) or "none"
        raise ProfileError(f"there is no profile named {name!r} in {path}; choose one of: {known}")
    real = sections[name.lower()]
    return Profile(real, parser[real], f"{path} [{real}]")


def names(path=None):
    if path is None:
        import etwtrace

        path = etwtrace.get_profile_path()
    return read_file(path).sections()
