"""Exercises of lesson 06 (guidance in practice): three graded ones.

- ``guided_gaussian(mean_a, cov_a, mean_b, cov_b, w)``: the normalised density
  ``N(a)^(1 + w) N(b)^(-w)`` as ``(mean, cov)``: the ``t = 0`` target of CFG when the condition
  and what it is contrasted with (the null label, or a negative label) are Gaussians. The lesson
  uses it twice: a negative label with the same covariance only moves the class (no sharpening),
  and the null label of a broader marginal both moves and sharpens it (the temperature analogy).
- ``rescale_phi(eps_guided, eps_cond, target_std)``: the mixing weight of CFG-rescale that gives
  each sample a chosen standard deviation.
- ``x0_loss_guided_eps(eps, x_t, alpha_bar, target, weight)``: loss guidance towards a target
  image on the denoised guess, the network's own dependence on ``x_t`` ignored.
"""

from __future__ import annotations

import torch

from .core import Exercise

LESSON = "06_guidance_in_practice"


def _spd(gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    m = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    return scale * (m @ m.T + 0.3 * torch.eye(2, dtype=torch.float64))


def _gaussian_public(gen: torch.Generator) -> list[tuple]:
    mean_a, mean_b = torch.randn(2, generator=gen, dtype=torch.float64), torch.randn(2, generator=gen,
                                                                                      dtype=torch.float64)
    cov_a = _spd(gen, 0.5)
    return [(mean_a, cov_a, mean_b, 3.0 * cov_a, 2.0),       # a broader "marginal"
            (mean_a, cov_a, mean_b, cov_a.clone(), 1.5),     # a negative label of the same shape
            (mean_a, cov_a, mean_b, _spd(gen, 20.0), 0.7)]


def _rescale_public(gen: torch.Generator) -> list[tuple]:
    eps_c = torch.randn(5, 1, 28, 28, generator=gen)
    eps_g = 2.5 * eps_c + 0.8 * torch.randn(5, 1, 28, 28, generator=gen)
    target = eps_c.flatten(1).std(1) * torch.linspace(1.1, 2.0, 5)
    return [(eps_g, eps_c, target), (eps_g[:, :, :4, :4] * 3, eps_c[:, :, :4, :4], torch.full((5,), 1.2))]


def _loss_public(gen: torch.Generator) -> list[tuple]:
    x_t, eps = torch.randn(4, 1, 28, 28, generator=gen), torch.randn(4, 1, 28, 28, generator=gen)
    target = torch.rand(4, 1, 28, 28, generator=gen) * 2 - 1
    alpha_bar = torch.tensor([0.9, 0.5, 0.1, 0.01])
    return [(eps, x_t, alpha_bar, target, 1.0), (eps[:, :, :5, :5], x_t[:, :, :5, :5], alpha_bar.flip(0),
                                                 target[:, :, :5, :5], 0.3)]


EXERCISES = [
    Exercise(name="guided_gaussian",
             lesson=LESSON,
             points=2,
             public_cases=_gaussian_public,
             tolerance=1e-6,
             hint="section 1: take logs; a power of a Gaussian density multiplies its quadratic form, and a sum "
                  "of quadratic forms in x is one quadratic form; read its precision and centre off it"),
    Exercise(name="rescale_phi",
             lesson=LESSON,
             points=1,
             public_cases=_rescale_public,
             tolerance=1e-5,
             hint="section 2: both terms of the mix are multiples of the same tensor, so the std of the mix is a "
                  "multiple of the guided std; solve for phi sample by sample"),
    Exercise(name="x0_loss_guided_eps",
             lesson=LESSON,
             points=1,
             public_cases=_loss_public,
             tolerance=1e-5,
             hint="section 4: with eps held fixed, how does x0-hat change when x_t changes? Chain that with the "
                  "loss's gradient in x0-hat, then go from the score to eps",
             twins=("course_lib.guidance.loss_guidance",)),
]
