"""The graded exercises of every lesson: one registry, read by the instant checks and the grader.

How a lesson adds an exercise (STYLE.md section 7):

1. In the lesson (nbgrader source format) a solution cell, ``grade_id`` = the exercise name,
   defines ONE function of that name, using only its arguments, ``math``, ``numpy as np``,
   ``torch`` and ``course_lib`` (the grader runs the solution cells alone, in a fresh
   interpreter with only these imports). The next cell is a locked grade cell with the
   exercise's points whose source is ``checks.check("<name>", <name>)``.
2. In ``course_lib/exercises/<lesson module>.py`` an entry of ``EXERCISES``::

       Exercise(name="double", lesson="99_example", points=1,
                public_cases=lambda gen: [(torch.randn(8, 2, generator=gen),)],  # shown by the check
                hidden_cases=lambda gen: [(torch.zeros(1, 2),), ...],           # edge cases and random ones
                reference=lambda x: 2 * x,               # the library's answer, same signature
                tolerance=1e-5, hint="which quantity / which section to reread, never the formula")

   Arguments and answers are tensors, numbers or tuples of them (they cross a process boundary);
   ``call`` runs answers that are not a plain ``fn(*args)``, ``compare`` replaces the reference
   for random answers (see :mod:`course_lib.exercises.core`).

``REGISTRY`` maps each exercise name to its :class:`Exercise`; :func:`for_lesson` lists a
lesson's exercises in registry order.
"""

from __future__ import annotations

from . import (classifier_free_guidance, classifier_guidance, diffusion_refresher, explicit_conditioning,
               since_2022, tradeoff)
from .core import Exercise, difference

__all__ = ["Exercise", "REGISTRY", "difference", "for_lesson", "get", "lessons"]

_MODULES = (diffusion_refresher, explicit_conditioning, classifier_guidance, classifier_free_guidance, tradeoff,
            since_2022)


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
