"""Graded exercises of lesson 02 (classifier guidance)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import diffusion, toy
from .core import Exercise

LESSON = "02_classifier_guidance"
_LINEAR = diffusion.make_schedule("linear", T=1000)


def _call_grad_log_classifier(fn: Callable, mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule,
                              x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return fn(mixture.log_posterior_fn(schedule), x, t, y)


def _exact_grad(mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule, x: torch.Tensor, t: torch.Tensor,
                y: torch.Tensor) -> torch.Tensor:
    """``grad_x log p(y | x_t) = score(x_t | y) - score(x_t)`` of the exact noised mixture (Bayes' rule on scores)."""
    out = torch.empty_like(x)
    for step in t.unique().tolist():
        at = t == step
        noised = mixture.noised(schedule.alpha_bars[step].item())
        out[at] = (noised.score(x[at], y[at]) - noised.score(x[at])).to(x.dtype)
    return out


def _classifier_case(gen: torch.Generator, mixture: toy.GaussianMixture2D, n: int, t: torch.Tensor) -> tuple:
    x = 2.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return mixture, _LINEAR, x, t, torch.randint(mixture.num_classes, (n,), generator=gen)


def _classifier_public(gen: torch.Generator) -> list[tuple]:
    return [_classifier_case(gen, toy.anisotropic(), 200, torch.full((200,), 300))]


def _classifier_hidden(gen: torch.Generator) -> list[tuple]:
    return [_classifier_case(gen, toy.ring(k=4), 50, torch.randint(0, 1000, (50,), generator=gen)),  # t per point
            _classifier_case(gen, toy.anisotropic(), 1, torch.tensor([999])),                       # batch of one
            _classifier_case(gen, toy.unequal_weights(), 40, torch.full((40,), 5))]                 # small t


def _guided_public(gen: torch.Generator) -> list[tuple]:
    eps, grad = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    return [(eps, grad, sigma_t, gamma) for gamma in (0.0, 1.0, 3.0) for sigma_t in (0.1, 0.7, 1.0)]


def _guided_hidden(gen: torch.Generator) -> list[tuple]:
    eps, grad = torch.randn(20, 2, generator=gen, dtype=torch.float64), torch.randn(20, 2, generator=gen,
                                                                                       dtype=torch.float64)
    sigma, gamma = 0.05 + torch.rand((), generator=gen).item(), 10 * torch.rand((), generator=gen).item()
    images = torch.randn(3, 1, 4, 4, generator=gen), torch.randn(3, 1, 4, 4, generator=gen)
    return [(eps, grad, sigma, gamma), (eps, grad, sigma, 0.0), (eps[:1], grad[:1], 1.0, 10.0),
            (*images, sigma, gamma)]


EXERCISES = [
    Exercise(name="grad_log_classifier", lesson=LESSON, points=1, public_cases=_classifier_public,
             hidden_cases=_classifier_hidden, reference=_exact_grad, call=_call_grad_log_classifier, tolerance=1e-6,
             hint="each point needs the gradient of its own label's log-probability; autograd differentiates a "
                  "scalar (reread the autograd section)"),
    Exercise(name="guided_eps", lesson=LESSON, points=1, public_cases=_guided_public, hidden_cases=_guided_hidden,
             reference=lambda eps, grad, sigma_t, gamma: eps - gamma * sigma_t * grad, tolerance=1e-5,
             hint="translate a change of the score into a change of eps with the score-eps relation of the refresher"),
]
