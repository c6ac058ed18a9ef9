"""What a student's install knows about a graded exercise, and how an answer is compared.

An :class:`Exercise` holds the public half of a graded exercise: its name, lesson and
points, the argument tuples the instant check (:func:`course_lib.checks.check`) calls the
student's function on, the tolerance, a hint, how to run an answer on one case, and the
library functions the exercise asks the student to write (its *twins*: a graded solution
that reaches one scores 0). The references and the hidden cases are instructor material
(``instructor/exercises/``): the installed package never holds them. The instant check
compares with stored expected outputs (``expected.pt``, made from the references by
``python -m course_lib.coursework build-edition`` and checked by hash, :mod:`.expected`).

Arguments may be tensors, numbers, schedules, mixtures or small models; answers must be
tensors, Python numbers or tuples/lists of them (the grader reads them back with
``torch.load(weights_only=True)``).
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
    """The public half of one graded exercise.

    ``public_cases(gen)`` returns the argument tuples the instant check uses (drawn from a
    generator seeded with 0); ``call(fn, *args)`` runs the student's function on one case
    (default ``fn(*args)``; an exercise whose answer is itself a function calls it here and
    returns tensors; it must be a module-level function of ``course_lib`` so that the
    grader's harness can import it); ``twins`` are dotted names of the library functions
    that compute the answer (``"course_lib.guidance.cfg"``, ``"course_lib.toy.GaussianMixture2D.product"``).
    """

    name: str
    lesson: str
    points: float
    public_cases: Cases
    tolerance: float = 1e-5
    hint: str = ""
    call: Callable[..., Any] = call_plain
    twins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"name must be a Python identifier (the function's name), got {self.name!r}")
        if not (len(self.lesson) > 3 and self.lesson[:2].isdigit() and self.lesson[2] == "_"):
            raise ValueError(f"lesson must be the lesson's file stem NN_name, got {self.lesson!r}")
        if not (math.isfinite(self.points) and self.points > 0):
            raise ValueError(f"points must be a positive number, got {self.points!r}")
        if not (self.tolerance > 0):
            raise ValueError(f"tolerance must be positive, got {self.tolerance!r}")
        if not all(isinstance(t, str) and t.startswith("course_lib.") for t in self.twins):
            raise ValueError(f"twins must be dotted names under course_lib, got {self.twins!r}")

    def cases(self) -> list[tuple]:
        """The public cases, always drawn the same way (the stored expected outputs match them)."""
        return self.public_cases(torch.Generator().manual_seed(0))

    def run(self, fn: Callable, args: tuple) -> Any:
        """The student's answer on one case; the arguments are copied first (an answer
        that changes its inputs in place cannot change what it is compared with)."""
        return self.call(fn, *copy.deepcopy(args))


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
