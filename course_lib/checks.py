"""The instant check of the lessons' graded exercises (STYLE.md section 7).

``checks.check("cfg_eps", cfg_eps)`` calls a student's function on the exercise's public
cases (:mod:`course_lib.exercises`), compares each answer with the reference, prints how
far the worst one is and raises ``AssertionError`` with a hint when it is too far.
``NotImplementedError`` from an unsolved stub passes through unchanged. The grader
(``python -m course_lib.coursework grade``) does not use this module's verdict: it calls
the functions again, on hidden cases, in a process of its own.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import exercises


def check(name: str, fn: Callable, *, seed: int = 0) -> None:
    """Check ``fn`` against exercise ``name`` on its public cases (drawn with ``seed``);
    prints the largest difference (a grade cell shows only that line); ``AssertionError`` with a
    hint if too far."""
    exercise = exercises.get(name)
    if not callable(fn):
        raise AssertionError(f"{name}: expected your function {name}, got {type(fn).__name__}")
    cases = exercise.public_cases(torch.Generator().manual_seed(seed))
    worst = 0.0
    for i, args in enumerate(cases):
        error = exercise.error(exercise.run(fn, args), args)
        if not error <= exercise.tolerance:  # also catches NaN
            raise AssertionError(f"{name}: case {i + 1} of {len(cases)} is off by {error:.3g} "
                                 f"(allowed {exercise.tolerance:g}). Hint: {exercise.hint}")
        worst = max(worst, error)
    print(f"✓ {name}: largest difference from the reference on {len(cases)} cases is {worst:.1e}")

