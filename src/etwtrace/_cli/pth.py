"""--enable / --disable: the etwtrace.pth that starts tracing in every interpreter of an
environment (it calls etwtrace.enable_if at start-up)."""

import os
import sys

from .._errors import UsageError

PTH_FILE = "etwtrace.pth"
PTH_TEMPLATE = "import etwtrace; etwtrace.enable_if({!r}, {!r})"


def _site_packages():
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def enable_pth(enable_var, type_var):
    """Write etwtrace.pth into this environment's site-packages; returns its path."""
    from pathlib import Path

    type_var = type_var or (f"{enable_var}_TYPE" if enable_var else "ETWTRACE_TYPE")
    pth_file = Path(_site_packages()) / PTH_FILE
    previous = None
    if pth_file.exists() or pth_file.is_symlink():
        if pth_file.is_symlink() or not _is_our_pth(pth_file):
            raise UsageError(f"{pth_file} exists and was not written by etwtrace; remove it yourself "
                             "or leave automatic tracing off")
        previous = _describe(pth_file)
    package_parent = Path(__file__).resolve().parent.parent.parent
    pth_file.write_text(f"{package_parent}\n{PTH_TEMPLATE.format(enable_var, type_var)}\n", encoding="utf-8")
    if previous:
        print(f"Replaced {pth_file} (it {previous})")
    else:
        print("Created", pth_file)
    if enable_var:
        print(f"Set {enable_var}=1 in the environment to activate tracing")
    print(f"Set {type_var}=instrumented to use instrumented events rather than stacks")
    return pth_file


def _describe(path):
    """What an etwtrace.pth of ours does, in words: 'traced every interpreter (mode: ...)'."""
    import ast
    import re

    match = re.search(r"etwtrace\.enable_if\((.*)\)", path.read_text(encoding="utf-8", errors="replace"))
    try:
        enable_var, type_var = ast.literal_eval(f"({match.group(1)},)") if match else ("", None)
    except (ValueError, SyntaxError):
        return "was damaged"
    when = f"traced when {enable_var} was set" if enable_var else "traced every interpreter"
    return f"{when}, in the mode {type_var} named" if type_var else when


def _is_our_pth(path):
    try:
        return "etwtrace.enable_if(" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def disable_pth():
    """Remove every etwtrace.pth we wrote along sys.path; returns the removed paths."""
    from pathlib import Path

    removed = []
    seen = set()
    for entry in [_site_packages(), *sys.path]:
        pth_file = Path(entry or ".") / PTH_FILE
        key = os.path.normcase(os.path.abspath(pth_file))
        if key in seen:
            continue
        seen.add(key)
        if pth_file.is_file() and not pth_file.is_symlink() and _is_our_pth(pth_file):
            pth_file.unlink()
            print("Removed", pth_file)
            removed.append(pth_file)
    if not removed:
        print("No etwtrace.pth was found; automatic tracing was not enabled in this environment")
    return removed
