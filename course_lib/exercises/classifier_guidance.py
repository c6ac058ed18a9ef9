"""Graded exercises of lesson 02 (classifier guidance): the public half (cases, hints, twins)."""

from __future__ import annotations

import math

import torch

from .. import diffusion, models, toy
from .core import Exercise, seed_from

LESSON = "02_classifier_guidance"
_LINEAR = diffusion.make_schedule("linear", T=1000)
_MIXTURE = "course_lib.toy.GaussianMixture2D"


def rotated_cov(angle: float, major: float, minor: float) -> torch.Tensor:
    """``[2, 2]`` float64 covariance with standard deviations ``major``, ``minor`` along axes turned by ``angle``."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return rot @ torch.diag(torch.tensor([major**2, minor**2], dtype=torch.float64)) @ rot.T


def _logits_public(gen: torch.Generator) -> list[tuple]:
    three = torch.tensor([[-1.6, -1.0], [1.6, -1.0], [0.0, 1.8]], dtype=torch.float64)
    weights = torch.tensor([0.4, 0.35, 0.25], dtype=torch.float64)
    shared = rotated_cov(0.5, 0.9, 0.35)
    return [(three, shared, weights, _LINEAR.alpha_bars[t].item()) for t in (50, 300, 700)]


def tiny_classifier(seed: int, num_classes: int = 3) -> torch.nn.Module:
    """A small noise-aware classifier ``model(x, t) -> logits`` with initial weights drawn from ``seed``; torch's
    global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.NoisyClassifier2D(num_classes, T=1000, width=16, depth=1).eval()


def _classifier_case(gen: torch.Generator, K: int, n: int, t: torch.Tensor) -> tuple:
    model = tiny_classifier(seed_from(gen), K)
    x = 2.5 * torch.randn(n, 2, generator=gen)
    return model, x, t, torch.randint(K, (n,), generator=gen)


def _classifier_public(gen: torch.Generator) -> list[tuple]:
    return [_classifier_case(gen, 3, 64, torch.full((64,), 300)),
            _classifier_case(gen, 3, 64, torch.randint(0, 1000, (64,), generator=gen))]


def _guided_public(gen: torch.Generator) -> list[tuple]:
    eps, grad = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    return [(eps, grad, sigma_t, gamma) for gamma in (1.0, 3.0) for sigma_t in (0.3, 0.9)]


EXERCISES = [
    Exercise(name="noised_logits",
             lesson=LESSON,
             points=1,
             public_cases=_logits_public,
             tolerance=1e-6,
             hint="write log p_t(k | x) by Bayes' rule with lesson 0's law of a noised class; with one covariance "
                  "shared by every class, which terms are the same for all k and so cancel in the softmax?",
             twins=(f"{_MIXTURE}.posterior", f"{_MIXTURE}.log_posterior_fn", f"{_MIXTURE}.log_prob",
                    f"{_MIXTURE}.score", "course_lib.toy.OracleClassifier", "course_lib.oracles.OracleClassifier",
                    "course_lib.oracles.log_posterior_fn", f"{_MIXTURE}.noised_log_posterior")),
    Exercise(name="classifier_grad_from_logits",
             lesson=LESSON,
             points=1,
             public_cases=_classifier_public,
             tolerance=1e-5,
             hint="guidance needs the gradient of a log-probability (section 1), and a network outputs logits; "
                  "autograd differentiates a scalar, and the points of a batch do not interact",
             twins=("course_lib.guidance.classifier_log_prob_grad", "course_lib.guidance.classifier_log_prob_fn",
                    "course_lib.guidance.classifier_guidance")),
    Exercise(name="guided_eps",
             lesson=LESSON,
             points=1,
             public_cases=_guided_public,
             tolerance=1e-5,
             hint="find the eps whose score (lesson 0: score = -eps / sigma_t) is the guided score of section 1",
             twins=("course_lib.guidance.classifier_guidance",)),
]
