"""The instructor half of a graded exercise: its reference, its hidden cases, what it tests.

The public half (:class:`course_lib.exercises.Exercise`: name, lesson, points, public cases,
tolerance, hint, how an answer is run, the library twins) ships with the package; this half
does not. A :class:`Grading` is matched to its public half by ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from course_lib.exercises import Exercise, difference

Cases = Callable[[torch.Generator], list[tuple]]


@dataclass(frozen=True)
class Grading:
    """``reference(*args)`` is the right value of ``exercise.call(fn, *args)``; ``hidden_cases(gen)``
    draws the grader's cases (edge cases and random ones) from a seed the student never sees;
    ``understanding`` says in one line what the exercise tests and ``shortcut`` why neither one
    library call nor a formula displayed in the lesson passes it."""

    name: str
    reference: Callable[..., Any]
    hidden_cases: Cases
    understanding: str
    shortcut: str

    def __post_init__(self) -> None:
        for field in ("understanding", "shortcut"):
            if not getattr(self, field).strip():
                raise ValueError(f"exercise {self.name}: say in {field}= what it tests / why shortcuts fail")


@dataclass(frozen=True)
class Graded:
    """An exercise as the grader sees it: the public half and the instructor half."""

    exercise: Exercise
    grading: Grading

    @property
    def name(self) -> str:
        return self.exercise.name

    @property
    def lesson(self) -> str:
        return self.exercise.lesson

    @property
    def points(self) -> float:
        return self.exercise.points

    def error(self, output: Any, args: tuple) -> float:
        """How far ``output`` is from the reference on ``args``, in the units of the tolerance;
        ``AssertionError`` naming what is wrong for a malformed output."""
        with torch.no_grad():
            return difference(output, self.grading.reference(*args), self.name)

    def errors(self, fn: Callable, cases: list[tuple]) -> list[float]:
        """:meth:`error` of ``fn``'s answer on each case, in order."""
        return [self.error(self.exercise.run(fn, args), args) for args in cases]
