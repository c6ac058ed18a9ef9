"""Graded exercises of lesson 01 (explicit conditioning): the public half (cases, hints, twins)."""

from __future__ import annotations

import torch

from .. import diffusion, toy
from .core import Exercise

LESSON = "01_explicit_conditioning"
_SCHEDULE = diffusion.make_schedule("linear", T=1000)
_COSINE = diffusion.make_schedule("cosine", T=1000)


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


def _noisy_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    near = lambda t: mixture.noised(_SCHEDULE.alpha_bars[t].item()).sample(48, generator=gen)[0]  # noqa: E731
    return [(*_null_case(mixture, near(100), 100), 0.2, 1),
            (*_null_case(mixture, near(400), 400), 0.5, 0),
            (*_null_case(mixture, 30 * torch.randn(16, 2, generator=gen), 50), 0.1, 2)]   # far from the data


def _floor_public(gen: torch.Generator) -> list[tuple]:
    covs = toy.anisotropic().covs
    return [(covs[0].clone(), _SCHEDULE.alpha_bars[::50].clone()),
            (covs[1].clone(), _SCHEDULE.alpha_bars.clone()),
            (covs[2].clone(), _COSINE.alpha_bars[::40].clone())]


EXERCISES = [
    Exercise(name="null_eps",
             lesson=LESSON,
             points=1,
             public_cases=_null_public,
             tolerance=1e-5,
             hint="the null label's minimiser averages the per-label ones; with which weights, once x_t is seen? "
                  "Work with log-probabilities until the last step: far from the data the likelihoods underflow",
             twins=("course_lib.toy.GaussianMixture2D.eps_fn", "course_lib.toy.GaussianMixture2D.posterior",
                    "course_lib.toy.OracleDenoiser", "course_lib.oracles.eps_fn", "course_lib.oracles.OracleDenoiser",
                    "course_lib.toy.GaussianMixture2D.noised_score", "course_lib.toy.GaussianMixture2D.denoised")),
    Exercise(name="noisy_label_eps",
             lesson=LESSON,
             points=1,
             public_cases=_noisy_public,
             tolerance=1e-5,
             hint="the minimiser is the average of eps over everything consistent with what the network is shown: "
                  "(x_t, the stored label). Which true classes could sit behind a stored label y, and how likely is "
                  "each, once x_t is seen as well?",
             twins=("course_lib.toy.GaussianMixture2D.eps_fn", "course_lib.toy.GaussianMixture2D.posterior",
                    "course_lib.toy.OracleDenoiser", "course_lib.oracles.eps_fn", "course_lib.oracles.OracleDenoiser",
                    "course_lib.toy.GaussianMixture2D.noised_score", "course_lib.toy.GaussianMixture2D.denoised")),
    Exercise(name="gaussian_loss_floor",
             lesson=LESSON,
             points=1,
             public_cases=_floor_public,
             tolerance=1e-6,
             hint="the best prediction is E[eps | x_t]; what is left is the variance of eps given x_t. For Gaussian "
                  "data, (x_t, eps) are jointly Gaussian: condition one on the other (lesson 0's gaussian_eps is "
                  "half of the work). The mean of the class does not matter",
             twins=()),                           # no library function computes it
]
