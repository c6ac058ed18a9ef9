"""The exercise record and how an answer is compared with its reference.

An :class:`Exercise` is everything the instant check (:func:`course_lib.checks.check`)
and the grader (``python -m course_lib.coursework grade``) need: the argument tuples to
call the student's function on (public ones shown by the instant check, hidden ones
drawn at grading time from a seed the student never sees), the reference answer, the
tolerance and a hint. Arguments may be any picklable object of ``torch``/``course_lib``
(tensors, numbers, a model, a schedule); return values must be tensors, Python numbers
or tuples/lists of them, because the grader reads them back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

Cases = Callable[[torch.Generator], list[tuple]]


def call_plain(fn: Callable, *args: Any) -> Any:
    """The default way to run an answer on a case: ``fn(*args)``."""
    return fn(*args)


@dataclass(frozen=True)
class Exercise:
    """One graded exercise (PLAN's exercise-format contract).

    ``public_cases(gen)`` / ``hidden_cases(gen)`` return lists of argument tuples;
    ``call(fn, *args)`` runs the student's function on one case (default ``fn(*args)``;
    an exercise whose answer is itself a function calls it here and returns tensors);
    ``reference(*args)`` is the expected value of ``call``. ``compare(output, args)``
    replaces the default comparison with a reference when the answer is random (it
    returns an error in units of ``tolerance`` and raises ``AssertionError`` with a
    message for a malformed answer).
    """

    name: str
    lesson: str
    points: float
    public_cases: Cases
    hidden_cases: Cases
    reference: Callable[..., Any] | None
    tolerance: float = 1e-5
    hint: str = ""
    call: Callable[..., Any] = call_plain
    compare: Callable[[Any, tuple], float] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"name must be a Python identifier (the function's name), got {self.name!r}")
        if not (len(self.lesson) > 3 and self.lesson[:2].isdigit() and self.lesson[2] == "_"):
            raise ValueError(f"lesson must be the lesson's file stem NN_name, got {self.lesson!r}")
        if not (math.isfinite(self.points) and self.points > 0):
            raise ValueError(f"points must be a positive number, got {self.points!r}")
        if not (self.tolerance > 0):
            raise ValueError(f"tolerance must be positive, got {self.tolerance!r}")
        if (self.reference is None) == (self.compare is None):
            raise ValueError(f"exercise {self.name}: give exactly one of reference and compare")

    def run(self, fn: Callable, args: tuple) -> Any:
        """The student's answer on one case; the arguments are copied first (an answer
        that changes its inputs in place cannot change what it is compared with)."""
        return self.call(fn, *copy.deepcopy(args))

    def errors(self, fn: Callable, cases: list[tuple]) -> list[float]:
        """:meth:`error` of ``fn``'s answer on each case, in order."""
        return [self.error(self.run(fn, args), args) for args in cases]

    def error(self, output: Any, args: tuple) -> float:
        """How far ``output`` is from the right answer on ``args``, in the units of
        ``tolerance``; ``AssertionError`` naming what is wrong for a malformed output."""
        if self.compare is not None:
            return float(self.compare(output, args))
        with torch.no_grad():
            return difference(output, self.reference(*args), self.name)


def difference(output: Any, expected: Any, name: str) -> float:
    """The largest ``|output - expected| / (1 + |expected|)`` over every entry (NaN counts
    as infinitely far); ``AssertionError`` for a wrong type, shape or structure."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(output, (tuple, list)) or len(output) != len(expected):
            raise AssertionError(f"{name} must return {len(expected)} values, got {_describe(output)}")
        return max((difference(o, e, name) for o, e in zip(output, expected)), default=0.0)
    if isinstance(expected, torch.Tensor):
        if not isinstance(output, torch.Tensor):
            raise AssertionError(f"{name} must return a torch tensor, got {_describe(output)}")
        if output.shape != expected.shape:
            raise AssertionError(f"{name} returned shape {tuple(output.shape)}, expected {tuple(expected.shape)}")
        if output.is_complex() or output.dtype == torch.bool:
            raise AssertionError(f"{name} must return real numbers, got dtype {output.dtype}")
        if expected.numel() == 0:
            return 0.0
        out, exp = output.detach().double().cpu(), expected.detach().double().cpu()
        gap = ((out - exp).abs() / (1 + exp.abs())).nan_to_num(nan=math.inf)
        return gap.max().item()
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if not isinstance(output, (int, float)) or isinstance(output, bool):
            raise AssertionError(f"{name} must return a Python number, got {_describe(output)}")
        gap = abs(output - expected) / (1 + abs(expected))
        return math.inf if math.isnan(gap) else gap
    raise TypeError(f"exercise {name}: reference returned {_describe(expected)}; use tensors, numbers or tuples")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def tiny_cfg_model(seed: int, num_classes: int = 3) -> torch.nn.Module:
    """A small conditional MLP ``model(x, t, y) -> eps`` (null label ``num_classes``) with
    initial weights drawn from ``seed``; torch's global generator is left as it was."""
    from .. import models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.ConditionalMLP(num_classes=num_classes, T=1000, width=16, depth=1).eval()


def seed_from(gen: torch.Generator) -> int:
    """A fresh integer seed drawn from ``gen`` (to seed a model or a generator inside a case)."""
    return int(torch.randint(2**31 - 1, (1,), generator=gen))
