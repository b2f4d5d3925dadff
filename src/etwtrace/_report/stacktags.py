"""Stack tags: which frames are the interpreter's own work, and folding them out of stacks.

The rules file format and what folding does are documented in the header of the shipped
file, profiles/python.stacktags (``python -m etwtrace --stacktags`` prints its path); this
module implements exactly that text. `StackTags.load(path)` reads a file (the shipped one
when path is None), `tag(module, symbol)` tags one frame, `fold(...)` folds one stack.
"""

import fnmatch
import os
import re

from .._errors import StackTagsError

__all__ = ["StackTags", "StackTagsError", "fold", "parse", "shipped_path"]

TAG_SEPARATOR = "/"


class Rule:
    __slots__ = ("tag", "module_glob", "symbol_glob", "_module", "_symbol", "order")

    def __init__(self, tag, module_glob, symbol_glob, order):
        self.tag = tag
        self.module_glob = module_glob
        self.symbol_glob = symbol_glob
        self.order = order
        self._module = None if module_glob == "*" else re.compile(fnmatch.translate(module_glob)).match
        self._symbol = None if symbol_glob == "*" else re.compile(fnmatch.translate(symbol_glob)).match

    def matches(self, module, symbol):
        if self._module is not None and not self._module(module or ""):
            return False
        if self._symbol is not None and (symbol is None or not self._symbol(symbol)):
            return False
        return True


def shipped_path():
    import etwtrace

    return etwtrace.get_stacktags_path()


class StackTags:
    def __init__(self, rules, path=""):
        self.path = path
        # Most specific (longest tag path) first, then file order: the first match wins.
        self.rules = sorted(rules, key=lambda r: (-len(r.tag.split(TAG_SEPARATOR)), r.order))

    @classmethod
    def load(cls, path=None):
        """The rules of `path` (the shipped file when None); StackTagsError if unusable."""
        path = shipped_path() if path is None else os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError:
            raise StackTagsError(f"the stack-tags file {path} is not UTF-8 text") from None
        except OSError as ex:
            raise StackTagsError(f"cannot read the stack-tags file {path}: {ex.strerror or ex}") from None
        return cls(parse(text, path), path)

    def tag(self, module, symbol):
        """The tag of a frame, or None. module: basename (native) or source file (Python)."""
        for rule in self.rules:
            if rule.matches(module, symbol):
                return rule.tag
        return None


def parse(text, path="<stacktags>"):
    rules = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f.strip() for f in stripped.split("|")]
        if len(fields) != 3:
            raise StackTagsError(
                f"{path}:{lineno}: a stack-tag rule is TAG | MODULE GLOB | SYMBOL GLOB "
                f"(three fields separated by '|'), not {stripped!r}")
        tag, module_glob, symbol_glob = fields
        if not tag or any(not part.strip() for part in tag.split(TAG_SEPARATOR)):
            raise StackTagsError(f"{path}:{lineno}: the tag {tag!r} has an empty part; write it like "
                                 f"[Python runtime]/Import Machinery")
        if not module_glob or not symbol_glob:
            raise StackTagsError(f"{path}:{lineno}: empty glob in {stripped!r}; use * to match anything")
        rules.append(Rule(TAG_SEPARATOR.join(p.strip() for p in tag.split(TAG_SEPARATOR)),
                          module_glob, symbol_glob, len(rules)))
    return rules


def _top(tag):
    return tag.split(TAG_SEPARATOR, 1)[0]


def fold(frames, tags, python, tag_frame):
    """Folds one stack (root first) as the stack-tags file header describes.

    frames: frame numbers, root first; tags: the tag of each (None when untagged);
    python: whether each is a Python frame; tag_frame(tag) -> the frame number of a frame
    standing for a collapsed run. Returns the folded list of frame numbers.
    """
    out = []
    count = len(frames)
    i = 0
    while i < count:
        tag = tags[i]
        if tag is None:
            out.append(frames[i])
            i += 1
            continue
        top = _top(tag)
        best = tag
        j = i + 1
        while j < count and tags[j] is not None and _top(tags[j]) == top:
            if len(tags[j]) > len(best):
                best = tags[j]  # the most specific; the rootmost among equals
            j += 1
        at_leaf = j == count
        next_to_python = (i > 0 and tags[i - 1] is None and python[i - 1]) or (
            j < count and tags[j] is None and python[j])
        if TAG_SEPARATOR in best or at_leaf:
            out.append(tag_frame(best))
        elif next_to_python or i == 0:
            pass  # interpreter glue between calls, or start-up code under the first frame
        else:
            out.append(tag_frame(best))  # the C API between two native frames
        i = j
    return out
