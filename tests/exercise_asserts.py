"""What every lesson's exercise tests assert: a right answer passes the public cases and the hidden
cases of several seeds; a typical mistake misses them by far more than the tolerance."""

from __future__ import annotations

from typing import Callable

import torch

from instructor import exercises as graded


def right_passes(name: str, right: Callable, seeds: tuple[int, ...] = (0, 7)) -> None:
    """``right`` is within tolerance on the public cases and on the hidden cases of each seed."""
    item = graded.get(name)
    for seed in seeds:
        cases = item.exercise.cases() + item.grading.hidden_cases(torch.Generator().manual_seed(seed))
        assert max(item.errors(right, cases)) <= item.exercise.tolerance, (name, seed)


def wrong_fails(name: str, wrongs: Callable | list[Callable], *, public: bool = False, seed: int = 3) -> None:
    """Each of ``wrongs`` misses the hidden cases (and the public ones when ``public``) by more
    than 100 times the tolerance."""
    item = graded.get(name)
    sets = [item.grading.hidden_cases(torch.Generator().manual_seed(seed))] + ([item.exercise.cases()] if public else [])
    for wrong in wrongs if isinstance(wrongs, list) else [wrongs]:
        for cases in sets:
            assert max(item.errors(wrong, cases)) > 100 * item.exercise.tolerance, name
