"""Graded exercises of lesson 02 (classifier guidance), and the expected results of its
end-of-lesson exercises.

Graded: ``noised_posterior_grad`` (the exact classifier gradient of a noised mixture),
``grad_log_classifier`` (the same by autograd, for any classifier) and ``guided_eps``
(the guided prediction a sampler is handed). The ``expected_*`` functions compute what
the end-of-lesson exercises ask the student to find, so that a test (and an instructor)
can confirm the stated result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable

import torch

from .. import conditional, diffusion, evaluate, guidance, metrics, pretrained, toy, widgets
from .core import Exercise

LESSON = "02_classifier_guidance"
_LINEAR = diffusion.make_schedule("linear", T=1000)


# --- graded: noised_posterior_grad(means, covs, weights, alpha_bar, x, y) -------------------------------------


def _mixture_args(mixture: toy.GaussianMixture2D) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return mixture.means.clone(), mixture.covs.clone(), mixture.weights.clone()


def _posterior_case(gen: torch.Generator, mixture: toy.GaussianMixture2D, t: int, n: int,
                    per_point_labels: bool) -> tuple:
    x = 2.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(mixture.num_classes, (n,), generator=gen) if per_point_labels else \
        int(torch.randint(mixture.num_classes, (1,), generator=gen))
    return (*_mixture_args(mixture), _LINEAR.alpha_bars[t].item(), x, y)


def _posterior_public(gen: torch.Generator) -> list[tuple]:
    return [_posterior_case(gen, toy.anisotropic(), 300, 100, per_point_labels=True),
            _posterior_case(gen, toy.anisotropic(), 600, 100, per_point_labels=False)]


# --- graded: grad_log_classifier(log_prob_fn, x, t, y) ---------------------------------------------------------

def _call_grad_log_classifier(fn: Callable, mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule,
                              x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return fn(mixture.log_posterior_fn(schedule), x, t, y)


def _classifier_case(gen: torch.Generator, mixture: toy.GaussianMixture2D, n: int, t: torch.Tensor) -> tuple:
    x = 2.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return mixture, _LINEAR, x, t, torch.randint(mixture.num_classes, (n,), generator=gen)


def _classifier_public(gen: torch.Generator) -> list[tuple]:
    return [_classifier_case(gen, toy.anisotropic(), 200, torch.full((200,), 300))]


# --- graded: guided_eps(eps, grad_log_p_y, sigma_t, gamma) -----------------------------------------------------


def _guided_public(gen: torch.Generator) -> list[tuple]:
    eps, grad = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    return [(eps, grad, sigma_t, gamma) for gamma in (1.0, 3.0) for sigma_t in (0.3, 0.9)]


EXERCISES = [
    Exercise(name="noised_posterior_grad",
             lesson=LESSON,
             points=1,
             public_cases=_posterior_public,
             tolerance=1e-6,
             hint="what is the law of x_t given its class (lesson 0, the noised mixture)? Then Bayes' rule on "
                  "scores (section 1): the prior p(y) drops out"),
    Exercise(name="grad_log_classifier",
             lesson=LESSON,
             points=1,
             public_cases=_classifier_public,
             tolerance=1e-6,
             call=_call_grad_log_classifier,
             hint="each point needs the gradient of its own label's log-probability; autograd differentiates a "
                  "scalar, and points do not interact"),
    Exercise(name="guided_eps",
             lesson=LESSON,
             points=1,
             public_cases=_guided_public,
             tolerance=1e-5,
             hint="find the eps whose score (lesson 0: score = -eps / sigma_t) is the guided score of section 1"),
]


# --- expected results of the end-of-lesson exercises ------------------------------------------------------------


