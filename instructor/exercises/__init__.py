"""The references and hidden cases of every graded exercise (instructor-only).

Each module here mirrors one of :mod:`course_lib.exercises` (same name) and lists its
:class:`~instructor.exercises.core.Grading` entries in ``GRADING``. :data:`GRADED` pairs every
public exercise with its grading; an exercise without one, or a grading without an exercise,
is an error at import.
"""

from __future__ import annotations

import importlib
import pkgutil

from course_lib import exercises

from .core import Graded, Grading

__all__ = ["GRADED", "Graded", "Grading", "for_lesson", "get", "lessons"]


def _collect() -> dict[str, Graded]:
    gradings: dict[str, Grading] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "core":
            continue
        for grading in importlib.import_module(f"{__name__}.{info.name}").GRADING:
            if grading.name in gradings:
                raise ValueError(f"two gradings are named {grading.name!r}")
            gradings[grading.name] = grading
    missing = sorted(set(exercises.REGISTRY) - set(gradings))
    orphans = sorted(set(gradings) - set(exercises.REGISTRY))
    if missing or orphans:
        raise ValueError(f"instructor material out of step with course_lib.exercises: no grading for {missing}, "
                         f"no public exercise for {orphans}")
    return {name: Graded(exercises.get(name), gradings[name]) for name in exercises.REGISTRY}


GRADED: dict[str, Graded] = _collect()


def get(name: str) -> Graded:
    """The graded exercise called ``name``; ``KeyError`` listing the known names otherwise."""
    if name not in GRADED:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(GRADED))}")
    return GRADED[name]


def lessons() -> list[str]:
    """The lessons that have graded exercises (file stems ``NN_name``), sorted."""
    return sorted({g.lesson for g in GRADED.values()})


def for_lesson(lesson: str) -> list[Graded]:
    """The graded exercises of ``lesson``, in the public registry's order."""
    return [g for g in GRADED.values() if g.lesson == lesson]
