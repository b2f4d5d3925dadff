"""Stack-tag rules: parsing, which rule tags a frame, and what folding does to a stack."""

import etwtrace
import pytest

from etwtrace._report.stacktags import StackTags, StackTagsError, fold, parse

RULES = """
# comment
[Python runtime]                  | libpython3*.so* | *
[Python runtime]/Import Machinery | libpython3*.so* | PyImport_*
[Python runtime]/Import Machinery | <frozen importlib._bootstrap*> | py::*
"""


def tags_of(text=RULES):
    return StackTags(parse(text, "rules"))


def test_the_most_specific_tag_wins_whatever_the_order():
    tags = tags_of()
    assert tags.tag("libpython3.12.so.1.0", "PyImport_ImportModuleLevelObject") == "[Python runtime]/Import Machinery"
    assert tags.tag("libpython3.12.so.1.0", "_PyEval_EvalFrameDefault") == "[Python runtime]"
    assert tags.tag("libz.so.1", "deflate") is None
    assert tags.tag("<frozen importlib._bootstrap>", "py::_find_and_load:<frozen importlib._bootstrap>") \
        == "[Python runtime]/Import Machinery"
    assert tags.tag("/src/app.py", "py::main:/src/app.py") is None


def test_a_frame_without_symbol_matches_only_star():
    tags = tags_of()
    assert tags.tag("libpython3.12.so.1.0", None) == "[Python runtime]"
    assert tags_of("[X] | * | deflate*").tag("libz.so", None) is None


@pytest.mark.parametrize("line, words", [
    ("[Python runtime] | libpython*", "three fields"),
    ("[A]//B | * | *", "empty part"),
    ("[A] |  | x", "empty glob"),
])
def test_a_bad_rule_is_one_sentence_naming_file_and_line(tmp_path, line, words):
    path = tmp_path / "mine.stacktags"
    path.write_text("# ok\n\n" + line + "\n")
    with pytest.raises(StackTagsError) as info:
        StackTags.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and words in message and "\n" not in message


def test_an_unreadable_file_is_one_sentence(tmp_path):
    with pytest.raises(StackTagsError, match="cannot read the stack-tags file"):
        StackTags.load(tmp_path / "missing.stacktags")


def test_the_shipped_file_loads_and_is_the_one_etwtrace_names():
    shipped = StackTags.load()
    assert shipped.path == etwtrace.get_stacktags_path()
    assert shipped.tag("libpython3.9.so.1.0", "_PyEval_EvalFrameDefault") == "[Python runtime]"
    assert shipped.tag("_etwtrace.cpython-312-x86_64-linux-gnu.so", "anything") == "[Python runtime]"
    assert shipped.tag("libpython3.13.so.1.0", "PyImport_ImportModuleLevelObject").endswith("/Import Machinery")
    assert shipped.tag("_asyncio.cpython-311-x86_64-linux-gnu.so", "task_step").endswith("/Coroutine Step")
    assert shipped.tag("libpython3.11.so.1.0", "Py_FinalizeEx").endswith("/Finalization")
    assert shipped.tag("libc.so.6", "malloc") is None
    assert shipped.tag("zlib.cpython-312-x86_64-linux-gnu.so", "zlib_compress") is None


def test_the_shipped_header_says_what_the_rules_do():
    text = open(etwtrace.get_stacktags_path(), encoding="utf-8").read()
    header = "".join(line for line in text.splitlines(True) if line.startswith("#"))
    assert "never tagged" not in header  # Python frames of the import machinery are tagged
    assert "Python frames only for the import machinery" in header
    for rule in parse(text):
        if rule.symbol_glob.startswith("py::"):
            assert rule.tag.endswith("/Import Machinery"), rule.tag


def _fold(spec):
    """spec: root first, 'P:name' (Python), 'N:name' (native), 'T:tag:name' (tagged native)."""
    frames, tags, python = [], [], []
    for item in spec:
        kind, _, rest = item.partition(":")
        tag = None
        if kind == "T":
            tag, _, rest = rest.rpartition(":")
        frames.append(rest)
        tags.append(tag)
        python.append(kind == "P")
    return fold(frames, tags, python, lambda tag: f"<{tag}>")


R = "T:[Python runtime]"
IMPORT = "T:[Python runtime]/Import Machinery"


def test_runs_between_python_frames_are_removed():
    assert _fold(["P:a", R + ":eval", R + ":vectorcall", "P:b"]) == ["a", "b"]


def test_a_run_at_the_leaf_collapses_into_its_tag():
    assert _fold(["P:a", R + ":eval", R + ":lookup"]) == ["a", "<[Python runtime]>"]


def test_glue_before_a_c_extension_is_removed_and_its_c_api_calls_collapse():
    assert _fold(["P:a", R + ":vectorcall", "N:zlib_compress", R + ":PyBytes", "N:memcpy"]) \
        == ["a", "zlib_compress", "<[Python runtime]>", "memcpy"]


def test_start_up_frames_at_the_root_are_removed_unless_they_are_the_whole_stack():
    assert _fold([R + ":_start", "N:__libc_start_main", R + ":Py_BytesMain", "P:main"]) \
        == ["__libc_start_main", "main"]
    assert _fold([R + ":_start", R + ":Py_Initialize"]) == ["<[Python runtime]>"]


def test_import_machinery_between_python_frames_collapses_into_one_named_frame():
    assert _fold(["P:main", R + ":eval", IMPORT + ":PyImport_Import", IMPORT + ":_find_and_load",
                  R + ":exec", "P:<module>"]) == ["main", "<[Python runtime]/Import Machinery>", "<module>"]


def test_file_filters_keep_or_drop_stacks_through_a_prefix():
    from etwtrace._report.build import Filters

    assert Filters(include=["/src/"]).files(["/lib/a.py", "/src/b.py"])
    assert not Filters(include=["/src/"]).files(["/lib/a.py"])
    assert not Filters(exclude=["/lib/"]).files(["/lib/a.py", "/src/b.py"])
    assert Filters(pids=[1]).thread(1, 5) and not Filters(pids=[1], tids=[6]).thread(1, 5)
