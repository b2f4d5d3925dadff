"""The Profile's frame labels and the command line's status line."""

import io
import time

from etwtrace._report import TerminalProgress
from etwtrace._report.profile import KERNEL, NATIVE, PYTHON, TAG, FrameKey


def test_labels_bracket_the_module_once():
    assert FrameKey(KERNEL, "ksys_write", "[kernel.kallsyms]").label == "ksys_write [kernel.kallsyms]"
    assert FrameKey(NATIVE, "__vdso_clock_gettime", "[vdso]").label == "__vdso_clock_gettime [vdso]"
    assert FrameKey(NATIVE, "deflate", "/usr/lib/libz.so.1").label == "deflate [libz.so.1]"
    assert FrameKey(PYTHON, "hot", "/src/app.py", 20).label == "hot (/src/app.py:20)"
    assert FrameKey(TAG, "[Python runtime]/Import Machinery").label == "[Python runtime]/Import Machinery"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_status_line_shows_on_a_terminal_and_is_cleared():
    out = FakeTerminal()
    progress = TerminalProgress(out, delay=0.01)
    progress.count = 12345
    time.sleep(0.1)
    progress.stage = "adding up the trace files"
    time.sleep(0.4)
    progress.done()
    text = out.getvalue()
    assert "etwtrace: reading perf data... 12,345 samples" in text
    assert "etwtrace: adding up the trace files... 0 s" in text
    assert text.endswith("\r\033[K")


def test_no_status_line_off_a_terminal():
    out = io.StringIO()
    progress = TerminalProgress(out, delay=0.0)
    time.sleep(0.05)
    progress.done()
    assert out.getvalue() == ""
