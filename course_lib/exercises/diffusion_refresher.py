"""Graded exercises of lesson 00 (the diffusion refresher): the public half (cases, hints, twins)."""

from __future__ import annotations

import torch

from .. import diffusion, toy
from .core import Exercise

LESSON = "00_diffusion_refresher"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


def _gaussian_case(gen: torch.Generator, mean: torch.Tensor, cov: torch.Tensor, t: int, n: int,
                   dtype: torch.dtype = torch.float64) -> tuple:
    alpha_bar = _LINEAR.alpha_bars[t].item()
    x_t = toy.GaussianMixture2D(mean[None], cov[None], [1.0]).noised(alpha_bar).sample(n, generator=gen)[0]
    return x_t.to(dtype), alpha_bar, mean, cov


def _gaussian_public(gen: torch.Generator) -> list[tuple]:
    lessons = toy.anisotropic()
    return [_gaussian_case(gen, lessons.means[k], lessons.covs[k], t, 64) for k, t in ((0, 50), (2, 300), (0, 700))]


def _points(gen: torch.Generator, n: int = 64, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return 3 * torch.randn(n, 2, generator=gen, dtype=dtype) + 1, torch.randn(n, 2, generator=gen, dtype=dtype)


def _accuracy_public(gen: torch.Generator) -> list[tuple]:
    every_50th = _LINEAR.alpha_bars[::50].clone()
    return [(1.0, 0.5, 0.5, every_50th),                                   # equal weights
            (1.5, 0.8, 0.3, _LINEAR.alpha_bars.clone()),                   # unequal weights, every step
            (2.0, 0.3, 0.5, _COSINE.alpha_bars[::25].clone())]             # the cosine schedule


def _renoise_public(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen)
    return [(x, _LINEAR.alpha_bars[s].item(), _LINEAR.alpha_bars[t].item(), eps) for s, t in ((0, 250), (100, 400),
                                                                                            (600, 999))]


def _ddim_public(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen, 32, torch.float64)
    return [(x, eps, _LINEAR.alpha_bars[t].item(), _LINEAR.alpha_bars[s].item()) for t, s in ((999, 949), (600, 550),
                                                                                            (150, 20))]


_MIXTURE = "course_lib.toy.GaussianMixture2D"

EXERCISES = [
    Exercise(name="renoise",
             lesson=LESSON,
             points=1,
             public_cases=_renoise_public,
             tolerance=1e-5,
             hint="x_s is itself a noised point; write x_t in terms of x_0 and two independent noises, and ask which "
                  "scaling of x_s and which noise variance give x_t the law of the forward process section",
             twins=()),                           # no library function computes it
    Exercise(name="bayes_accuracy",
             lesson=LESSON,
             points=1,
             public_cases=_accuracy_public,
             tolerance=1e-6,
             hint="first the law of x_t within each class (section 1); then where the best rule, which picks the class "
                  "with the larger weight times likelihood, switches; then how much of each class lands on its "
                  "own side. Unequal weights move the switch",
             twins=()),                           # no library function computes it
    Exercise(name="gaussian_eps",
             lesson=LESSON,
             points=1,
             public_cases=_gaussian_public,
             tolerance=1e-5,
             hint="first write the law of x_t when x_0 is Gaussian (section 1: mean and covariance of a noised "
                  "component), take its score, then turn the score into a noise prediction (section 4)",
             twins=(f"{_MIXTURE}.eps_fn", f"{_MIXTURE}.score", f"{_MIXTURE}.log_prob", "course_lib.toy.OracleDenoiser",
                    "course_lib.oracles.eps_fn", "course_lib.oracles.OracleDenoiser",
                    "course_lib.toy.GaussianMixture2D.noised_score", "course_lib.toy.GaussianMixture2D.denoised")),
    Exercise(name="ddim_as_euler",
             lesson=LESSON,
             points=1,
             public_cases=_ddim_public,
             tolerance=1e-5,
             hint="step in the rescaled variables of the ODE section (x divided by sqrt(alpha_bar) and the matching "
                  "sigma_bar), not in x and sigma_t; then return to x",
             twins=("course_lib.diffusion.ddim_step", "course_lib.diffusion.sample")),
]
