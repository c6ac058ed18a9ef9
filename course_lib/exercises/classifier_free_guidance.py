"""Exercises of lesson 03 (classifier-free guidance): four graded ones, and what the
end-of-lesson exercises should find.

Graded (hidden cases use what the instant check never shows: ``w = -1`` and ``0``,
``guidance_scale <= 1``, ``t = 0`` and ``T - 1``, a batch of one, another mixture,
a cosine schedule, images):

- ``cfg_eps(eps_cond, eps_uncond, w)``: the CFG prediction (Ho & Salimans 2021, eq. 6).
- ``diffusers_eps(eps_cond, eps_uncond, guidance_scale)``: what a diffusers pipeline computes;
  it runs CFG only when ``guidance_scale > 1`` and the conditional branch alone otherwise.
- ``implicit_grad(model, x, t, y, schedule)``: the implicit classifier's gradient, checked with a
  perfect model (:class:`toy.OracleDenoiser`) against the exact ``grad_x log p_t(y | x_t)``.
- ``cfg_x0_guess(x_t, eps_cond, eps_uncond, alpha_bar, w)``: the denoised guess under CFG, checked
  against the exact posterior means ``(1 + w) E[x0 | x_t, y] - w E[x0 | x_t]`` (Tweedie).

End-of-lesson: :func:`posterior_of_samples`, :func:`interpolation_gap` and
:func:`sampler_baseline_diversity` compute what exercises 1 to 3 ask the student to find.
"""

from __future__ import annotations

import math

import torch

from .. import diffusion, guidance, metrics, tilted, toy
from .core import Exercise, seed_from, tiny_cfg_model

LESSON = "03_classifier_free_guidance"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


# --- cfg_eps ------------------------------------------------------------------------------------


def _pair(gen: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(*shape, generator=gen, dtype=dtype), torch.randn(*shape, generator=gen, dtype=dtype)


def _cfg_public(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 50, 2)
    return [(eps_c, eps_u, w) for w in (0.5, 2.0, 4.0)]


# --- diffusers_eps ------------------------------------------------------------------------------


def _diffusers_public(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 50, 2)
    return [(eps_c, eps_u, s) for s in (1.5, 3.0, 7.5)]


# --- implicit_grad ------------------------------------------------------------------------------


def _noised_points(mixture: toy.GaussianMixture2D, t: torch.Tensor, schedule: diffusion.Schedule,
                   gen: torch.Generator) -> torch.Tensor:
    """``x_t`` of points drawn from the mixture, each at its own ``t`` (float64)."""
    x0 = mixture.sample(len(t), generator=gen)[0].double()
    return diffusion.q_sample(x0, t, torch.randn(len(t), 2, generator=gen, dtype=torch.float64), schedule)


def _implicit_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    oracle = toy.OracleDenoiser(mixture, _LINEAR)
    t = torch.randint(100, 900, (40,), generator=gen)
    x = _noised_points(mixture, t, _LINEAR, gen)
    return [(oracle, x, t, y, _LINEAR) for y in range(3)]


# --- cfg_x0_guess -------------------------------------------------------------------------------


def _x0_case(mixture: toy.GaussianMixture2D, y: int, t: int, w: float, n: int, schedule: diffusion.Schedule,
             gen: torch.Generator) -> tuple:
    tt = torch.full((n,), t)
    x_t = _noised_points(mixture, tt, schedule, gen)
    with torch.no_grad():
        eps_c, eps_u = mixture.eps_fn(schedule, y)(x_t, tt), mixture.eps_fn(schedule)(x_t, tt)
    # the mixture and y travel with the case, for the reference only (the answer takes the first five)
    return x_t, eps_c, eps_u, schedule.alpha_bars[t].item(), w, mixture, y


def _x0_call(fn, x_t, eps_cond, eps_uncond, alpha_bar, w, mixture, y):
    return fn(x_t, eps_cond, eps_uncond, alpha_bar, w)


def _x0_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_x0_case(mixture, 1, t, w, 40, _LINEAR, gen) for t, w in ((200, 1.0), (500, 3.0), (800, 2.0))]


EXERCISES = [
    Exercise(name="cfg_eps",
             lesson=LESSON,
             points=1,
             public_cases=_cfg_public,
             tolerance=1e-5,
             hint="reread section 2: which weight gives the unconditional model, which the conditional one?"),
    Exercise(name="diffusers_eps",
             lesson=LESSON,
             points=1,
             public_cases=_diffusers_public,
             tolerance=1e-5,
             hint="reread section 2: how guidance_scale relates to w, and what diffusers does at guidance_scale <= 1"),
    Exercise(name="implicit_grad",
             lesson=LESSON,
             points=2,
             public_cases=_implicit_public,
             tolerance=1e-5,
             hint="section 3: Bayes' rule turns the two predictions into a classifier's gradient; mind the sign, "
                  "and every point has its own noise level"),
    Exercise(name="cfg_x0_guess",
             lesson=LESSON,
             points=2,
             public_cases=_x0_public,
             tolerance=1e-5,
             call=_x0_call,
             hint="lesson 0's denoised guess, computed from the noise prediction that CFG actually uses"),
]


# --- what the end-of-lesson exercises should find ----------------------------------------------


