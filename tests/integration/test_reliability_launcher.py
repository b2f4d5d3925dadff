"""The launcher is not the program: run as a script, with -m, with -c, as a directory with
__main__.py and as a zip app, launcher_frames.py sees under the launcher (stack mode and
instrumented) exactly the frames it sees run by `python`: traceback.extract_stack(),
inspect.stack(), sys._getframe() depth, the recursion depth it reaches, a warning attributed
beyond its outermost frame, a thread's stack, and the traceback of its uncaught exception and
exit status 1, byte for byte."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability" / "launcher_frames.py"
MODES = {"stack": ["--stack"], "instrumented": ["--instrument"]}
FORMS = ["script", "module", "string", "directory", "zipapp"]


def target(tmp_path, form):
    """The command-line arguments that run the program in `form`, from cwd `tmp_path`."""
    if form == "script":
        shutil.copy(SCRIPT, tmp_path / "launcher_frames.py")
        return ["launcher_frames.py"]
    if form == "module":
        shutil.copy(SCRIPT, tmp_path / "launcher_frames.py")
        return ["-m", "launcher_frames"]
    if form == "string":
        return ["-c", SCRIPT.read_text()]
    if form == "directory":
        (tmp_path / "app").mkdir()
        shutil.copy(SCRIPT, tmp_path / "app" / "__main__.py")
        return ["app"]
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.write(SCRIPT, "__main__.py")
    return ["app.zip"]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("form", FORMS)
def test_no_launcher_frame_visible(tmp_path, form, mode):
    args = target(tmp_path, form)
    untraced = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, timeout=60)
    traced = subprocess.run([sys.executable, "-m", "etwtrace", *MODES[mode], "--quiet", "--", *args],
                            cwd=tmp_path, capture_output=True, timeout=60)
    assert untraced.returncode == 1 and b"ValueError: uncaught" in untraced.stderr, untraced.stderr
    assert (traced.returncode, traced.stdout, traced.stderr) == (1, untraced.stdout, untraced.stderr)
    # Untraced, the program's own frames (and runpy's two for -m and directories) are all.
    expected = {"script": 2, "string": 2, "module": 4, "directory": 4, "zipapp": 4}[form]
    assert f"main extract_stack {expected} ".encode() in untraced.stdout, untraced.stdout
