"""The test command's driver (see scripts/test): builds and tests etwtrace on every CPython.

Steps, each failing the run if it fails:
  1. C++ units with GoogleTest under ctest, warnings as errors.
  2. The same units built with AddressSanitizer + UndefinedBehaviorSanitizer.
  3. The trace-reader fuzz target, briefly (tests/fuzz/run.sh).
  4. For each CPython 3.9-3.13: a fresh venv, `pip install .` (warnings as errors), pytest.
     The default interpreter (3.11) must be present; the others are tested where installed,
     and CI requires all of them.
  5. The native module built with ASan/UBSan and the non-perf pytest suites run under it
     (tests/stress among them: traced programs under the sanitizers).
  6. The capture reader's atheris target, briefly (tests/fuzz/run_capture.sh), on 3.11.
  7. valgrind memcheck of one representative traced run, both modes, on 3.13
     (tests/valgrind/run.sh; 3.11 and older report CPython's own uninitialised int digit).
Ends with one line: "total: N passed, N failed, N skipped".
"""

import argparse
import contextlib
import glob
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
DEFAULT_VERSION = "3.11"
VALGRIND_VERSION = "3.13"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
WORK = ROOT / "build" / "test-run"


def find_python(version):
    candidates = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / "python3")))
    candidates = [c for c in candidates if Path(c).parent.parent.name.count(".") == 2]
    if candidates:
        return candidates[-1]
    exe = shutil.which(f"python{version}")
    return exe


TIMINGS = []  # (step, seconds), printed at the end: where the run's time went


@contextlib.contextmanager
def timed(label):
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS.append((label, time.monotonic() - started))


def use_compiler_cache():
    """The five wheels and the sanitizer build compile the same Python-independent sources:
    ccache (installed by setup-system.sh) compiles each once per run. Its cache lives in the
    run's work directory, so a run never reuses another checkout's objects."""
    if shutil.which("ccache") and "CMAKE_CXX_COMPILER_LAUNCHER" not in os.environ:
        os.environ["CMAKE_CXX_COMPILER_LAUNCHER"] = "ccache"
        os.environ.setdefault("CCACHE_DIR", str(WORK / "ccache"))
        os.environ.setdefault("CCACHE_BASEDIR", str(ROOT))
        os.environ.setdefault("CCACHE_NOHASHDIR", "1")  # build directories differ; sources do not


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw).returncode


class Totals:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def add_junit(self, path, label):
        if not Path(path).exists():
            self.failed += 1
            self.failures.append(f"{label}: no results")
            return
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            tests = int(suite.get("tests", 0))
            failures = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            self.passed += tests - failures - skipped
            self.failed += failures
            self.skipped += skipped
            if failures:
                self.failures.append(f"{label}: {failures} failed")

    def step(self, ok, label):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(label)


def cpp_units(totals, sanitize):
    label = "C++ units" + (" (ASan/UBSan)" if sanitize else "")
    build = WORK / ("cpp-asan" if sanitize else "cpp")
    args = ["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DETWTRACE_BUILD_TESTS=ON",
            "-DETWTRACE_WERROR=ON", "-DCMAKE_BUILD_TYPE=" + ("Debug" if sanitize else "RelWithDebInfo"),
            f"-DPython_EXECUTABLE={sys.executable}"]
    if sanitize:
        args.append("-DETWTRACE_SANITIZE=address,undefined")
    if run(args) or run(["cmake", "--build", build, "-j2"]):
        totals.step(False, f"{label}: build")
        return
    junit = build / "ctest-junit.xml"
    run(["ctest", "--test-dir", build, "--output-on-failure", "--output-junit", junit])
    totals.add_junit(junit, label)


def fuzz(totals):
    script = ROOT / "tests" / "fuzz" / "run.sh"
    if not script.exists():
        return
    env = dict(os.environ, FUZZ_WORK_DIR=str(WORK / "fuzz"), FUZZ_ARTIFACTS=str(WORK / "fuzz-crashes"))
    totals.step(run(["bash", script, "45"], env=env) == 0, "reader fuzzing")


def capture_fuzz(totals, vpy):
    """The capture reader's fuzz target, for a short while, in the default version's venv."""
    script = ROOT / "tests" / "fuzz" / "run_capture.sh"
    if run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", "atheris"]):
        totals.step(False, "capture reader fuzzing: pip install atheris")
        return
    env = dict(os.environ, PYTHON=str(vpy), FUZZ_ARTIFACTS=str(WORK / "fuzz-crashes"))
    totals.step(run(["sh", script, "20"], env=env) == 0, "capture reader fuzzing")


def valgrind_memcheck(totals, vpy):
    script = ROOT / "tests" / "valgrind" / "run.sh"
    totals.step(run(["sh", script], env=dict(os.environ, PYTHON=str(vpy))) == 0, "valgrind memcheck")


def venv_for(version, python, sanitize=False):
    env_dir = WORK / f"venv-{version}{'-asan' if sanitize else ''}"
    if not (env_dir / "bin" / "python").exists():
        if run([python, "-m", "venv", env_dir]):
            return None
    vpy = env_dir / "bin" / "python"
    # pytest; the report's real consumers (speedscope's schema, a browser over the DevTools
    # protocol); protobuf, which the package needs for pprof (installed here with --no-deps);
    # coverage.py, a tracer that tests/stress runs alongside ours.
    if run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip", "pytest",
            "jsonschema", "websocket-client", "protobuf", "coverage"]):
        return None
    env = dict(os.environ, ETWTRACE_WERROR="1")
    build_dir = WORK / f"wheel-build-{version}{'-asan' if sanitize else ''}"
    cmd = [vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall",
           "--no-deps", ROOT, "-C", f"build-dir={build_dir}"]
    if sanitize:
        cmd += ["-C", "cmake.define.ETWTRACE_SANITIZE=address,undefined", "-C", "cmake.build-type=Debug"]
    if run(cmd, env=env):
        return None
    return vpy


def pytest_on(totals, version, python, extra_args, sanitize=False):
    label = f"CPython {version}" + (" (ASan/UBSan)" if sanitize else "")
    with timed(f"{label}: venv and build"):
        vpy = venv_for(version, python, sanitize)
    if vpy is None:
        totals.step(False, f"{label}: install")
        return
    junit = WORK / f"pytest-{version}{'-asan' if sanitize else ''}.xml"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    args = [vpy, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}", "-q"]
    if sanitize:
        libasan = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
        libubsan = subprocess.run(["g++", "-print-file-name=libubsan.so"], capture_output=True, text=True).stdout.strip()
        env["LD_PRELOAD"] = f"{libasan} {libubsan}"
        # CPython itself leaks by design at exit; we look for memory errors and UB.
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        env["ETWTRACE_SANITIZED"] = "1"
        args += ["-m", "not perf"]
    args += ["--rootdir", ROOT, *extra_args]
    if not extra_args:
        args.append(ROOT / "tests")
    started = time.monotonic()
    with timed(f"{label}: pytest"):
        rc = run(args, cwd=WORK, env=env)
    print(f"{label}: pytest exit {rc} in {time.monotonic() - started:.0f} s", flush=True)
    if rc not in (0, 1):
        totals.step(False, f"{label}: pytest exit {rc}")
    totals.add_junit(junit, label)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma-separated CPython versions")
    parser.add_argument("--no-cpp", action="store_true", help="skip the C++ units and fuzzing")
    parser.add_argument("--no-asan", action="store_true", help="skip the sanitizer runs")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. a test path)")
    opts = parser.parse_args()
    # pytest runs from the work directory: make the caller's relative test paths absolute.
    opts.pytest_args = [str(Path(a).resolve()) if Path(a.split("::")[0]).exists() and "::" not in a
                        else a for a in opts.pytest_args]

    run_started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    totals = Totals()
    in_ci = bool(os.environ.get("CI"))
    if in_ci:
        os.environ.setdefault("ETWTRACE_REQUIRE_PERF", "1")

    use_compiler_cache()
    if not opts.no_cpp:
        with timed("C++ units"):
            cpp_units(totals, sanitize=False)
        if not opts.no_asan:
            with timed("C++ units (ASan/UBSan)"):
                cpp_units(totals, sanitize=True)
        with timed("reader fuzzing"):
            fuzz(totals)

    versions = opts.versions.split(",")
    for version in versions:
        python = find_python(version)
        if python is None:
            if version == DEFAULT_VERSION or in_ci:
                print(f"CPython {version} is required but not installed", flush=True)
                totals.step(False, f"CPython {version}: missing")
            else:
                print(f"CPython {version} is not installed here; not tested", flush=True)
            continue
        pytest_on(totals, version, python, opts.pytest_args)

    if not opts.no_asan and DEFAULT_VERSION in versions:
        python = find_python(DEFAULT_VERSION)
        if python:
            pytest_on(totals, DEFAULT_VERSION, python, opts.pytest_args, sanitize=True)

    default_venv = WORK / f"venv-{DEFAULT_VERSION}" / "bin" / "python"
    if not opts.no_cpp and DEFAULT_VERSION in versions and default_venv.exists():
        with timed("capture reader fuzzing"):
            capture_fuzz(totals, default_venv)
    valgrind_venv = WORK / f"venv-{VALGRIND_VERSION}" / "bin" / "python"
    if not opts.no_asan and VALGRIND_VERSION in versions and valgrind_venv.exists():
        with timed("valgrind memcheck"):
            valgrind_memcheck(totals, valgrind_venv)

    for label, seconds in TIMINGS:
        print(f"time: {label}: {seconds:.0f} s")
    print(f"time: all: {time.monotonic() - run_started:.0f} s")
    for failure in totals.failures:
        print("FAILED:", failure)
    print(f"total: {totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped", flush=True)
    return 1 if totals.failed or totals.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
