"""The text summary of a Profile of known shape (real captures: test_build.py)."""

import io
import re

from etwtrace._report import summary
from etwtrace._report.formats import ReportOptions


def render(profile, **options):
    out = io.BytesIO()
    summary.write(profile, out, ReportOptions(**options))
    return out.getvalue().decode("utf-8")


def test_python_functions_with_self_and_total_shares(synthetic_profile):
    text = render(synthetic_profile)
    hot = next(line for line in text.splitlines() if "hot (app.py:20)" in line and "%" in line)
    assert re.match(r"\s+70\.0%\s+700\.7\s+70\.0%\s+700\.7\s+hot", hot), hot
    main = next(line for line in text.splitlines() if line.rstrip().endswith("main (app.py:10)"))
    assert re.match(r"\s+0\.0%\s+0\.0\s+100\.0%", main), main


def test_native_code_under_the_hot_function(synthetic_profile):
    text = render(synthetic_profile)
    section = text.split("Where the hottest Python functions spend their self time")[1]
    hot = section.split("cold (app.py:30)")[0]
    assert re.search(r"57\.1%\s+zlib_compress \[zlib\.so\]\s+C extension", hot) or \
        re.search(r"57\.1%\s+zlib_compress \[zlib\.so\]\s+library", hot), hot
    assert re.search(r"57\.1%\s+leaf deflate \[libz\.so\.1\]\s+library", hot), hot
    assert "its own bytecode" in hot
    cold = section.split("cold (app.py:30)")[1]
    assert re.search(r"33\.3%\s+ksys_write \[kernel\]\s+kernel", cold), cold


def test_exact_figures_offcpu_and_marks(synthetic_profile):
    text = render(synthetic_profile)
    assert re.search(r"\n\s+7\s+600\.0\s+600\.0\s+75\.0%\s+85,714\.3\s+hot \(app\.py:20\)", text), text
    assert "250.0 100.0%   main (app.py:10) > cold (app.py:30)  [in ksys_write [kernel]]" in text
    assert re.search(r"range\s+phase one\s+500\.0 ms", text)


def test_fits_100_columns_without_colour_and_ends_with_one_health_line(synthetic_profile):
    text = render(synthetic_profile, per_thread=True)
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "\033[" not in text
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("health: 1,000 samples, 1 switches, 0 lost chunks")
    assert "=== process 100, thread 101 (worker)" in text
    assert "\033[" in render(synthetic_profile, color=True)


def test_losses_are_called_out(synthetic_profile):
    synthetic_profile.health.lost_chunks = 2
    synthetic_profile.health.incomplete_capture = True
    lines = render(synthetic_profile).rstrip("\n").splitlines()
    health = next(i for i, line in enumerate(lines) if line.startswith("health: "))
    assert "2 lost chunks" in lines[health]
    warning = " ".join(line.strip() for line in lines[health + 1:])
    assert warning.startswith("WARNING: ") and "perf lost 2 chunks" in warning and "incomplete" in warning
