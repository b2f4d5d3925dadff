"""The benchmark environments: one venv per CPython under build/bench/, with etwtrace installed
from this checkout (`pip install .`) and every peer from PyPI, each on its own so one that
cannot be installed for a version only skips that peer (with pip's reason)."""

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "build" / "bench"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"

# What pip installs for each "needs" of the tool table, in the order to try: the newest
# austin-dist's binary needs glibc 2.38, so an older one is the fallback on Debian 12.
PEERS = {
    "module:yappi": ["yappi"],
    "module:viztracer": ["viztracer"],
    "module:pyinstrument": ["pyinstrument"],
    "bin:py-spy": ["py-spy"],
    "bin:scalene": ["scalene"],
    "bin:austin": ["austin-dist", "austin-dist<4"],
}
# How to tell that an installed peer works (not only that pip put it there).
CHECKS = {"bin:austin": ["--version"], "bin:py-spy": ["--version"], "bin:scalene": ["--version"]}


@dataclass
class Env:
    python: str
    version: str  # "3.12"
    bindir: str
    problems: Dict[str, str] = field(default_factory=dict)  # need -> why it is missing

    def executable(self, name):
        local = os.path.join(self.bindir, name)
        return local if os.path.exists(local) else (shutil.which(name) or local)

    @property
    def version_info(self):
        return tuple(int(p) for p in self.version.split("."))


def find_python(version):
    found = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / "python3")))
    found = [c for c in found if Path(c).parent.parent.name.count(".") == 2]
    return found[-1] if found else shutil.which(f"python{version}")


def version_of(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def src_stamp():
    """The last commit that changed what `pip install .` builds (plus uncommitted changes)."""
    paths = ["src", "pyproject.toml", "CMakeLists.txt"]
    last = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", *paths],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
                           capture_output=True, text=True).stdout.strip()
    return last + ("+dirty" if dirty else "")


def pip(venv_python, *args):
    return subprocess.run([venv_python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return lines[-1].strip() if lines else "no output"


def works(env, need):
    kind, name = need.split(":", 1)
    if kind == "module":
        return subprocess.run([env.python, "-c", f"import {name}"], capture_output=True).returncode == 0, ""
    exe = env.executable(name)
    if not os.path.exists(exe):
        return False, f"{name} is not installed"
    proc = subprocess.run([exe, *CHECKS.get(need, ["--help"])], capture_output=True, text=True)
    return proc.returncode == 0, last_line(proc.stderr or proc.stdout)


def prepare(version, log):
    """The venv for one CPython, made or brought up to date; None (with a printed reason) if
    that CPython is not installed."""
    base = find_python(version)
    if not base:
        log(f"CPython {version}: not installed here, skipped")
        return None
    venv = BENCH / f"venv-{version}"
    python = str(venv / "bin" / "python")
    if not os.path.exists(python):
        log(f"CPython {version}: creating {venv.relative_to(ROOT)}")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    env = Env(python=python, version=version, bindir=str(venv / "bin"))
    stamp_file = venv / "etwtrace-source"
    stamp = src_stamp()
    if not stamp_file.exists() or stamp_file.read_text() != stamp or stamp.endswith("+dirty"):
        log(f"CPython {version}: pip install . (etwtrace from this checkout)")
        # The pip that a venv of 3.9 to 3.11 bundles (23.0) has no -C for scikit-build-core's
        # build directory.
        proc = pip(python, "install", "--upgrade", "pip")
        if proc.returncode:
            raise SystemExit(f"CPython {version}: pip install --upgrade pip failed: {last_line(proc.stderr)}")
        proc = pip(python, "install", "--force-reinstall", "--no-deps", str(ROOT),
                   "-C", f"build-dir={BENCH / ('wheel-' + version)}")
        if proc.returncode:
            raise SystemExit(f"CPython {version}: pip install . failed: {last_line(proc.stderr)}")
        stamp_file.write_text(stamp)
    for need, specs in PEERS.items():
        ok, why = works(env, need)
        for spec in specs:
            if ok:
                break
            log(f"CPython {version}: pip install {spec}")
            proc = pip(python, "install", spec)
            ok, why = works(env, need) if proc.returncode == 0 else (False, f"pip install {spec}: "
                                                                      f"{last_line(proc.stderr)}")
        if not ok:
            env.problems[need] = why
    return env


def current(log):
    """The running interpreter as it is (no venv, nothing installed): the smallest configuration."""
    env = Env(python=sys.executable, version="%d.%d" % sys.version_info[:2], bindir=os.path.dirname(sys.executable))
    for need in PEERS:
        ok, why = works(env, need)
        if not ok:
            env.problems[need] = why or f"{need.split(':', 1)[1]} is not installed in this environment"
    return env
