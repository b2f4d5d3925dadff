"""--capture PATH: record the launched program with perf into a capture bundle.

    preflight.py   where the capture goes, which library's probes it records
    profiles.py    the recording profiles (profiles/python-perf.ini)
    probes.py      the USDT probes registered as tracefs uprobe events
    supervisor.py  runs perf record around the traced child, then finishes the bundle
    child.py       the traced child's side: its command line and set-up
"""

# Imported by every launch: the supervisor (configparser, shlex, subprocess) and the child's
# set-up load only when a capture runs, so that a plain run's program does not get their
# modules in sys.modules and their objects in its garbage collector's generations.
from .child import in_capture

__all__ = ["run", "child_setup", "in_capture"]


def run(*args, **kwargs):
    from .supervisor import run as run_capture

    return run_capture(*args, **kwargs)


def child_setup():
    from .child import child_setup as set_up_child

    set_up_child()
