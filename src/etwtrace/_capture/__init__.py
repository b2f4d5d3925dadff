"""--capture PATH: record the launched program with perf into a capture bundle.

    preflight.py   where the capture goes, which library's probes it records
    profiles.py    the recording profiles (profiles/python-perf.ini)
    probes.py      the USDT probes registered as tracefs uprobe events
    supervisor.py  runs perf record around the traced child, then finishes the bundle
    child.py       the traced child's side: its command line and set-up
"""

from .child import child_setup, in_capture
from .supervisor import run

__all__ = ["run", "child_setup", "in_capture"]
