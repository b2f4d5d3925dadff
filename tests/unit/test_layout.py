"""The Python side's layout: no import circles, no oversized module, one event model."""

import ast
import os
from pathlib import Path

import etwtrace

PACKAGE = Path(etwtrace.__file__).resolve().parent
SOURCE_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "etwtrace"
ROOT = SOURCE_PACKAGE if SOURCE_PACKAGE.is_dir() else PACKAGE


def _modules():
    modules = {}
    for path in ROOT.rglob("*.py"):
        if "_native" in path.parts:
            continue
        parts = ("etwtrace",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _import_graph():
    """module -> the package modules it imports (a submodule named in `from P import m` counts
    as an import of m alone, as Python runs P's __init__ first anyway)."""
    modules = _modules()
    known = set(modules) | {"etwtrace._etwtrace"}  # the native module: imports nothing of ours
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & known
                if subs:
                    deps |= subs
                    if len(subs) < len(node.names) and target in modules:
                        deps.add(target)
                elif target in modules:
                    deps.add(target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & modules.keys()
        graph[name] = deps - {name}
    graph["etwtrace._etwtrace"] = set()
    return graph


def _cycles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_circle():
    graph = _import_graph()
    assert len(graph) > 20
    assert _cycles(graph) == []


def test_no_python_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}


def test_one_event_model():
    definitions = [str(p.relative_to(ROOT)) for p in _modules().values()
                   for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                   if isinstance(node, ast.ClassDef) and node.name in ("Event", "Frame", "StackFrame")]
    assert sorted(definitions) == [os.path.join("_read", "events.py")] * 2


def test_every_exception_class_lives_in_errors():
    places = {str(p.relative_to(ROOT)) for p in _modules().values()
              for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
              if isinstance(node, ast.ClassDef) and any(
                  getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases)}
    assert places == {"_errors.py"}
