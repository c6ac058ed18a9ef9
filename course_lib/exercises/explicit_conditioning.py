"""Graded exercises of lesson 01 (explicit conditioning), and the results its end-of-lesson
exercises ask the student to find (``expected_*``)."""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from .. import diffusion, guidance, toy
from .core import Exercise, seed_from, tiny_cfg_model

LESSON = "01_explicit_conditioning"


def _call_conditional(fn: Callable, model: torch.nn.Module, y: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        eps_fn = fn(model, y)
        if not callable(eps_fn):
            raise AssertionError(f"conditional_eps_fn must return a function eps_fn(x, t), got {type(eps_fn).__name__}")
        return eps_fn(x, t)


def _conditional_cases(gen: torch.Generator, K: int, n: int) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), K)
    x, t = torch.randn(n, 2, generator=gen), torch.randint(1000, (n,), generator=gen)
    return [(model, y, x, t) for y in range(K + 1)]


_SCHEDULE = diffusion.make_schedule("linear", T=1000)


def _null_case(mixture: toy.GaussianMixture2D, x: torch.Tensor, t: int, dtype: torch.dtype = torch.float64) -> tuple:
    """The exact per-label denoisers and noised log-likelihoods of ``mixture`` at ``(x, t)``."""
    x, tt = x.double(), torch.full((x.shape[0],), t)
    noised = mixture.noised(_SCHEDULE.alpha_bars[t].item())
    eps = torch.stack([mixture.eps_fn(_SCHEDULE, y=k)(x, tt) for k in range(mixture.num_classes)])
    log_lik = torch.stack([noised.log_prob(x, y=k) for k in range(mixture.num_classes)], dim=1)
    return eps.to(dtype), log_lik.to(dtype), mixture.weights.to(dtype)


def _null_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    cases = [_null_case(mixture, mixture.noised(_SCHEDULE.alpha_bars[t].item()).sample(64, generator=gen)[0], t)
             for t in (50, 300, 700)]
    return cases + [_null_case(mixture, 40 * torch.randn(16, 2, generator=gen), 50)]   # far from the data


EXERCISES = [
    Exercise(name="conditional_eps_fn",
             lesson=LESSON,
             points=1,
             public_cases=lambda gen: _conditional_cases(gen, 3, 40),
             tolerance=1e-5,
             call=_call_conditional,
             hint="the model takes one label per point of the batch; reread the model interface section"),
    Exercise(name="null_eps",
             lesson=LESSON,
             points=1,
             public_cases=_null_public,
             tolerance=1e-5,
             hint="the null label's minimiser averages the per-label ones; with which weights, once x_t is seen? "
                  "Work with log-probabilities until the last step: far from the data the likelihoods underflow"),
]


# --------------------------------------------------------------------------- end-of-lesson exercises


