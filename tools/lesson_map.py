"""Print docs/development.md's table of which library functions each lesson calls, read from
the solved lessons' code cells (``module.name`` for every ``course_lib`` module a lesson uses).

    python tools/lesson_map.py        # the Markdown table; tests/test_docs.py checks the page holds it
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def modules() -> list[str]:
    """Every module of ``course_lib`` (top level, packages included), sorted."""
    return sorted(info.name for info in pkgutil.iter_modules([str(ROOT / "course_lib")]))


def calls(lesson: Path) -> dict[str, set[str]]:
    """``module -> names`` the lesson's code cells use as ``module.name``."""
    known, found = set(modules()), {}
    for cell in nbformat.read(lesson, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # a cell with IPython magics
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in known:
                found.setdefault(node.value.id, set()).add(node.attr)
    return found


def table() -> str:
    """The Markdown table, one row per solved lesson."""
    rows = ["| lesson | modules and functions |", "| --- | --- |"]
    for lesson in sorted((ROOT / "instructor" / "lessons").glob("[0-9][0-9]_*.ipynb")):
        used = calls(lesson)
        cell = "; ".join(f"`{m}`: " + ", ".join(f"`{n}`" for n in sorted(used[m])) for m in sorted(used))
        rows.append(f"| `{lesson.stem}` | {cell} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
