"""The package's shape: arrows only downward (no import cycle, imports inside functions
included) and modules short enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "course_lib"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 450
# command lines and the benchmark sit on top: nothing inside the package may import them
TOP = {"course_lib.bench", "course_lib.recipes.__main__", "course_lib.coursework.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__``)."""
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The package module that ``import name`` loads last: the longest known prefix."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its source, in functions too:
    ``import course_lib.x``, ``from course_lib import x``, ``from . import x``, ``from .x import y``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    out.add(_resolve(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:  # `from pkg import sub` imports the submodule sub
                target = f"{source}.{alias.name}"
                out.add(target if target in known else _resolve(source, known))
    out.discard(None)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_parser_sees_every_import_form(tmp_path):
    known = dict.fromkeys(["course_lib", "course_lib.a", "course_lib.b", "course_lib.sub", "course_lib.sub.c"])
    src = tmp_path / "c.py"
    src.write_text("import os\nimport course_lib.a\nfrom course_lib import b, setup\n"
                   "def f():\n    from .. import a\n    from ..b import thing\n    from . import c\n")
    # inside a function too; `setup` is no module, so it is the package; c importing itself is no arrow
    assert imports("course_lib.sub.c", src, known) == {"course_lib.a", "course_lib.b", "course_lib"}


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_nothing_imports_the_top_layer():
    edges = graph()
    offenders = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets & TOP)
    assert not offenders, offenders


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_short(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"
