"""The instructor material the grader loads: references and hidden cases, kept out of the package.

A student's install holds only the public half of each exercise (:mod:`course_lib.exercises`).
The other half (reference, hidden cases) lives in an ``instructor/`` folder beside the lessons,
as Otter-Grader keeps ``dist/autograder`` apart from ``dist/student``. :func:`load` imports
it from ``--instructor DIR`` (default: the checkout's ``instructor/``) for the grader's own
process; graded submissions run in a sandbox that cannot see that folder.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

CHECKOUT = Path(__file__).resolve().parents[2]


def instructor_folder(folder: str | Path | None = None) -> Path:
    """The instructor folder: ``folder`` when given, else the checkout's ``instructor/``;
    ``ValueError`` naming ``--instructor`` when there is none."""
    if folder is None:
        if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "instructor" / "exercises").is_dir():
            return CHECKOUT / "instructor"
        raise ValueError("no instructor material: pass --instructor DIR, the course's instructor/ folder (it holds "
                         "the references and hidden cases; a student's install does not)")
    path = Path(folder).resolve()
    if not (path / "exercises" / "__init__.py").is_file() or path.name != "instructor":
        raise ValueError(f"--instructor must be the course's instructor/ folder (holding exercises/); got {path}")
    return path


def load(folder: str | Path | None = None) -> ModuleType:
    """The ``instructor.exercises`` module of ``folder`` (see :func:`instructor_folder`):
    ``GRADED``, ``get(name)``, ``for_lesson(lesson)``, ``lessons()``."""
    path = instructor_folder(folder)
    loaded = sys.modules.get("instructor")
    if loaded is not None and Path(loaded.__file__).resolve().parent != path:
        raise ValueError(f"another instructor folder is loaded already ({loaded.__file__}); one per process")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return importlib.import_module("instructor.exercises")


def lessons_folder(folder: str | Path | None = None) -> Path:
    """The solved source lessons: ``instructor/lessons/`` of :func:`instructor_folder`."""
    return instructor_folder(folder) / "lessons"
