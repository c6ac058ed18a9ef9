"""The graded exercises as a student's install knows them: one registry for the instant checks.

Each lesson module (``diffusion_refresher``, ``explicit_conditioning``, ...) lists its
:class:`Exercise` entries in ``EXERCISES``: name, lesson, points, public cases, tolerance,
hint, how an answer is run, and the library functions it asks the student to write. The
references and hidden cases live in the instructor material (``instructor/exercises/``);
the public cases' right answers are stored in ``expected.pt`` (:mod:`.expected`).

How a lesson adds an exercise:

1. In the source lesson (``instructor/lessons/``, nbgrader source format) a solution cell,
   ``grade_id`` = the exercise name, defines ONE function of that name, using only its
   arguments, ``math``, ``numpy as np``, ``torch`` and ``course_lib`` (the grader runs the
   solution cell alone, in a fresh sandboxed interpreter). The next cell is a locked grade
   cell with the exercise's points whose source is ``checks.check("<name>", <name>)``.
2. Here, an :class:`Exercise` entry; in ``instructor/exercises/<module>.py`` its reference,
   hidden cases and the one-line account of what it tests.
3. ``python -m course_lib.coursework build-edition`` stores the public answers and writes the
   student edition (``notebooks/``).
"""

from __future__ import annotations

from . import (classifier_free_guidance, classifier_guidance, diffusion_refresher, explicit_conditioning,
               in_practice, since_2022, tradeoff)
from .core import Exercise, difference

__all__ = ["Exercise", "REGISTRY", "difference", "for_lesson", "get", "lessons"]

_MODULES = (diffusion_refresher, explicit_conditioning, classifier_guidance, classifier_free_guidance, tradeoff,
            since_2022, in_practice)


def _collect() -> dict[str, Exercise]:
    registry: dict[str, Exercise] = {}
    for module in _MODULES:
        for exercise in module.EXERCISES:
            if exercise.name in registry:
                raise ValueError(f"two exercises are named {exercise.name!r} ({module.__name__})")
            registry[exercise.name] = exercise
    return registry


REGISTRY: dict[str, Exercise] = _collect()


def get(name: str) -> Exercise:
    """The exercise called ``name``; ``KeyError`` listing the known names otherwise."""
    if name not in REGISTRY:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def lessons() -> list[str]:
    """The lessons that have graded exercises (file stems ``NN_name``), sorted."""
    return sorted({e.lesson for e in REGISTRY.values()})


def for_lesson(lesson: str) -> list[Exercise]:
    """The graded exercises of ``lesson`` (a file stem ``NN_name``), in registry order."""
    return [e for e in REGISTRY.values() if e.lesson == lesson]
