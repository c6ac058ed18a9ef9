"""The instant check of the lessons' graded exercises, and the stand-in for an unwritten one.

``checks.check("cfg_eps", cfg_eps)`` calls a student's function on the exercise's public cases
(:mod:`course_lib.exercises`), compares each answer with the stored expected output, prints
how far the worst one is and raises ``AssertionError`` with a hint when it is too far. An
untouched stub (it raises ``NotImplementedError``) is reported as not attempted yet, without
an error, so Run All on a fresh lesson reaches its end. ``checks.yours_or(...)`` lets a later
cell use the student's function, or the library's own with a visible note while the exercise
is not written. The grader does not use this module's verdict: it calls the functions
again, on hidden cases, in a sandbox of its own.
"""

from __future__ import annotations

from typing import Callable

from . import exercises
from .exercises import expected


def check(name: str, fn: Callable) -> None:
    """Check ``fn`` against exercise ``name`` on its public cases; prints one line;
    ``AssertionError`` with a hint if an answer is too far."""
    exercise = exercises.get(name)
    if not callable(fn):
        raise AssertionError(f"{name}: expected your function {name}, got {type(fn).__name__}")
    cases = exercise.cases()
    wanted = expected.outputs(name, cases)
    worst = 0.0
    for i, (args, want) in enumerate(zip(cases, wanted)):
        try:
            answer = exercise.run(fn, args)
        except NotImplementedError:
            print(f"… {name}: not attempted yet. Write the function above, then run this cell again.")
            return
        error = exercises.difference(answer, want, name)
        if not error <= exercise.tolerance:  # also catches NaN
            raise AssertionError(f"{name}: case {i + 1} of {len(cases)} is off by {error:.3g} "
                                 f"(allowed {exercise.tolerance:g}). Hint: {exercise.hint}")
        worst = max(worst, error)
    print(f"✓ {name}: largest difference from the right answer on {len(cases)} cases is {worst:.1e}")


def attempted(name: str, fn: Callable) -> bool:
    """Whether ``fn`` is more than the untouched stub: it does not raise ``NotImplementedError``
    on the exercise's first public case (a wrong answer counts as attempted)."""
    exercise = exercises.get(name)
    try:
        exercise.run(fn, exercise.cases()[0])
    except NotImplementedError:
        return False
    except Exception:  # noqa: BLE001 -- a buggy attempt is still the student's own function
        return True
    return True


def yours_or(name: str, fn: Callable, fallback: Callable, *, using: str) -> Callable:
    """``fn`` if the student wrote exercise ``name``; else ``fallback`` (the library's way of
    computing the same thing, described by ``using``) with a printed note, so the cells
    that follow still draw their figures."""
    if attempted(name, fn):
        return fn
    print(f"Note: {name} is not written yet, so the cells below use {using} in its place. "
          f"Write {name} above and run this cell again to see your own version at work.")
    return fallback
