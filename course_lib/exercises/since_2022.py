"""Exercises of lesson 05 (guidance since 2022): the public half of four graded ones.

- ``autoguidance_repair_weight(var, delta_good, delta_bad)``: the autoguidance weight at which two
  blurred copies of a Gaussian class give back the class's exact score at ``t = 0``.
- ``corrector_scale(gamma, gamma_predictor)``: the scale of the tilted density that the Langevin part of
  an ancestral guided sampler targets, once its deterministic part is taken at another scale
  (Bradley & Nakkiran 2024, generalised).
- ``gaussian_product(mean_a, cov_a, mean_b, cov_b)``: the product of two Gaussian densities as
  ``(mean, cov, log_scale)``, checked against :meth:`toy.GaussianMixture2D.product` (the exact oracle).
- ``flow_velocity_from_vp(eps, x_t, alpha_bar)``: the rectified-flow velocity at the point of the flow's
  path that matches ``x_t`` of our (variance-preserving) schedule, from our model's noise prediction.

References, hidden cases and what each exercise tests: ``instructor/exercises/since_2022.py``.
"""

from __future__ import annotations

import torch

from .. import diffusion, toy
from .core import Exercise

LESSON = "05_guidance_since_2022"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


# --- autoguidance_repair_weight -----------------------------------------------------------------


def _repair_public(gen: torch.Generator) -> list[tuple]:
    return [(1.0, 0.1, 0.2), (0.01, 0.1, 0.2), (0.5, 0.3, 0.6)]


# --- corrector_scale ----------------------------------------------------------------------------


def _corrector_public(gen: torch.Generator) -> list[tuple]:
    return [(2.0, 1.0), (7.5, 1.0), (3.0, 0.0), (2.0, 2.5)]


# --- gaussian_product ---------------------------------------------------------------------------


def _spd(gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    m = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    return scale * (m @ m.T + 0.2 * torch.eye(2, dtype=torch.float64))


def _product_public(gen: torch.Generator) -> list[tuple]:
    return [(torch.randn(2, generator=gen, dtype=torch.float64), _spd(gen),
             torch.randn(2, generator=gen, dtype=torch.float64), _spd(gen)) for _ in range(3)]


# --- flow_velocity_from_vp ----------------------------------------------------------------------


def _vp_case(mixture: toy.GaussianMixture2D, y: int | None, t: torch.Tensor, schedule: diffusion.Schedule,
             gen: torch.Generator, dtype: torch.dtype = torch.float64) -> tuple:
    """Points ``x_t`` of our schedule with the exact eps; the mixture and ``y`` travel for the reference."""
    n = t.shape[0]
    x0 = mixture.sample(n, generator=gen)[0].double()
    x_t = diffusion.q_sample(x0, t, torch.randn(n, 2, generator=gen, dtype=torch.float64), schedule)
    eps = mixture.eps_fn(schedule, y)(x_t, t)
    return eps.to(dtype), x_t.to(dtype), schedule.alpha_bars[t].to(dtype), mixture, y


def _vp_call(fn, eps, x_t, alpha_bar, mixture, y):
    return fn(eps, x_t, alpha_bar)


def _vp_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_vp_case(mixture, y, torch.randint(50, 950, (30,), generator=gen), _LINEAR, gen) for y in (1, None, 0)]


EXERCISES = [
    Exercise(name="autoguidance_repair_weight",
             lesson=LESSON,
             points=1,
             public_cases=_repair_public,
             tolerance=1e-6,
             hint="section 3: the good and the bad model are the class blurred by delta_good and delta_bad; at t = 0 "
                  "each score is that of a Gaussian. Write autoguidance's score and ask when it is the unblurred one",
             twins=("course_lib.guidance.autoguidance", "course_lib.toy.GaussianMixture2D.score")),
    Exercise(name="corrector_scale",
             lesson=LESSON,
             points=1,
             public_cases=_corrector_public,
             tolerance=1e-9,
             hint="section 4: split the ancestral sampler's drift into the probability-flow drift at the predictor's "
                  "scale and what is left; the noise the sampler adds fixes the Langevin step, and the step fixes "
                  "which score the leftover drift must be"),
    Exercise(name="gaussian_product",
             lesson=LESSON,
             points=2,
             public_cases=_product_public,
             tolerance=1e-6,
             hint="section 5: add the two log-densities and complete the square in x; what is left over does not "
                  "depend on x, and that is log_scale",
             twins=("course_lib.toy.GaussianMixture2D.product",)),
    Exercise(name="flow_velocity_from_vp",
             lesson=LESSON,
             points=2,
             public_cases=_vp_public,
             tolerance=1e-5,
             call=_vp_call,
             hint="section 6: divide x_t by a number to put it on the flow's path (which tau?); the noise in it is the "
                  "same noise, so what are E[eps | x_tau] and E[x0 | x_tau]?",
             twins=("course_lib.flow.velocity_from_eps", "course_lib.flow.eps_from_velocity",
                    "course_lib.flow.mixture_velocity_fn", "course_lib.toy.GaussianMixture2D.denoised")),
]
