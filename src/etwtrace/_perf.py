"""Finding and running perf, and whether this user may record with it.

Shared by the capture (which records) and the capture reader (which runs `perf script`).
"""

import os
import shutil
import subprocess

from ._errors import CaptureError

# The perf executable to use (default: `perf` on PATH).
ENV_PERF = "ETWTRACE_PERF"
DEBIAN_PACKAGE = "linux-perf"
INSTALL_HINT = (f"install it with `apt-get install {DEBIAN_PACKAGE}` (Debian; "
                "`linux-tools-$(uname -r)` on Ubuntu)")


def perf_path():
    """The perf command to run, or None when there is none."""
    perf = os.environ.get(ENV_PERF) or shutil.which("perf")
    return perf if perf and os.path.exists(perf) else None


def find_perf():
    """(perf command, version) of a working perf, or CaptureError saying how to install it."""
    perf = perf_path()
    if not perf:
        raise CaptureError(f"perf is not installed; {INSTALL_HINT} and run again")
    try:
        out = subprocess.run([perf, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=30)
    except OSError as ex:
        raise CaptureError(f"perf ({perf}) cannot be run ({ex.strerror}); reinstall {DEBIAN_PACKAGE}") from None
    text = out.stdout.decode(errors="replace").strip()
    if out.returncode != 0 or not text.startswith("perf version"):
        first = text.splitlines()[-1] if text else f"exit status {out.returncode}"
        raise CaptureError(
            f"perf does not work here ({first}); install the perf matching this kernel "
            f"(`apt-get install {DEBIAN_PACKAGE}` on Debian)")
    return perf, text.split()[-1]


def paranoid_level():
    """kernel.perf_event_paranoid, or None when it cannot be read."""
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def privileged():
    """Root, or CAP_PERFMON (38) / CAP_SYS_ADMIN (21) in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return bool(caps & (1 << 38) or caps & (1 << 21))
    except (OSError, ValueError):
        pass
    return False


def permission_problem():
    """None if perf may record this user's processes, else the one-sentence reason."""
    if privileged():
        return None
    level = paranoid_level()
    if level is not None and level > 2:
        return (f"perf is not permitted for this user (kernel.perf_event_paranoid is {level}); "
                "run as root, or allow it with `sudo sysctl kernel.perf_event_paranoid=2`")
    return None
