"""Exercises of lesson 04 (the quality-diversity trade-off): the public half of three graded ones,
and the leaky model of the lesson's section 3.

- ``frechet_of_shrinkage(mean, cov, centre, c)``: the Frechet distance (FID's formula) between a
  Gaussian class and the same class shrunk by a factor ``c`` towards a point, in closed form.
- ``ddim_shrink(var, schedule, steps)``: by how much deterministic DDIM with the exact noise
  prediction shrinks the spread of a 1-D Gaussian class, for a number of steps.
- ``leak_repair_weight(lam)``: the CFG weight that turns a conditional prediction which mixes in a
  share ``lam`` of the unconditional one back into the exact conditional, checked with the exact
  eps of a 2-D mixture.

References, hidden cases and what each exercise tests: ``instructor/exercises/tradeoff.py``.
"""

from __future__ import annotations

import math

import torch

from .. import diffusion, guidance, toy, validate
from .core import Exercise

LESSON = "04_quality_diversity_tradeoff"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


def leaky_mixture(mixture: toy.GaussianMixture2D, y: int, lam: float) -> toy.GaussianMixture2D:
    """A conditional model of class ``y`` that leaks a share ``lam`` of its mass to every class in
    proportion to the class weights: the mixture with weights ``(1 - lam) e_y + lam pi`` (one component
    per class). Its unconditional ``eps_fn`` is that model's exact conditional prediction."""
    if not 0 < lam < 1:
        raise ValueError(f"lam must lie strictly between 0 and 1 (every class keeps some weight), got {lam!r}")
    validate.labels(y, 1, mixture.num_classes)
    if mixture.num_components != mixture.num_classes:
        raise ValueError("mixture must have one component per class")
    one_hot = torch.eye(mixture.num_components, dtype=torch.float64)[y]
    return toy.GaussianMixture2D(mixture.means, mixture.covs, lam * mixture.weights + (1 - lam) * one_hot)


# --- frechet_of_shrinkage -----------------------------------------------------------------------


def _shrink_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [(mixture.means[1].clone(), mixture.covs[1].clone(), torch.tensor([2.0, -2.5], dtype=torch.float64), c)
            for c in (0.6, 0.3)] + [(mixture.means[0].clone(), mixture.covs[0].clone(),
                                     torch.randn(2, generator=gen, dtype=torch.float64), 1.5)]


# --- ddim_shrink --------------------------------------------------------------------------------


def _ddim_public(gen: torch.Generator) -> list[tuple]:
    return [(0.25, _LINEAR, 10), (1.0, _LINEAR, 50), (4.0, _LINEAR, 10)]


# --- leak_repair_weight -------------------------------------------------------------------------


def _leak_call(fn, mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule, y: int, lam: float,
               x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """CFG at the student's weight on the leaky conditional ``(1 - lam) eps(x, y) + lam eps(x)``
    (exact eps of ``mixture``) and the exact unconditional."""
    w = fn(lam)
    if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < -1:
        raise AssertionError(f"leak_repair_weight must return a finite Python number >= -1, got {w!r}")
    cond, uncond = mixture.eps_fn(schedule, y), mixture.eps_fn(schedule)
    leaky = guidance.cfg(cond, uncond, -lam)              # (1 - lam) eps(x, y) + lam eps(x)
    return guidance.cfg(leaky, uncond, float(w))(x, t)


def _leak_case(mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule, y: int, lam: float, n: int,
               t: int | None, gen: torch.Generator) -> tuple:
    ts = torch.randint(schedule.T, (n,), generator=gen) if t is None else torch.full((n,), t)
    x0, _ = mixture.sample(n, generator=gen)
    x_t = diffusion.q_sample(x0.double(), ts, torch.randn(n, 2, generator=gen, dtype=torch.float64), schedule)
    return (mixture, schedule, y, lam, x_t, ts)


def _leak_public(gen: torch.Generator) -> list[tuple]:
    return [_leak_case(toy.anisotropic(), _LINEAR, 1, lam, 200, None, gen) for lam in (0.2, 0.5)]


EXERCISES = [
    Exercise(name="frechet_of_shrinkage",
             lesson=LESSON,
             points=2,
             public_cases=_shrink_public,
             tolerance=1e-6,
             hint="section 1: which Gaussian does the shrunk class follow (mean and covariance)? Then FID's distance "
                  "between two Gaussians (the docstring of sample_metrics.frechet_gaussians states it): what is the square "
                  "root of the cross term when one covariance is a multiple of the other?",
             twins=("course_lib.sample_metrics.frechet_gaussians", "course_lib.sample_metrics.frechet_distance")),
    Exercise(name="ddim_shrink",
             lesson=LESSON,
             points=2,
             public_cases=_ddim_public,
             tolerance=1e-6,
             hint="section 2's sampler's baseline: for a Gaussian class the exact noise prediction is linear in x_t "
                  "(Tweedie, lesson 0), so every deterministic DDIM step multiplies the distance to the class mean "
                  "by a number; multiply them",
             twins=("course_lib.diffusion.sample", "course_lib.diffusion.ddim_step",
                    "course_lib.toy.GaussianMixture2D.eps_fn", "course_lib.toy.GaussianMixture2D.score",
                    "course_lib.oracles.eps_fn", "course_lib.oracles.OracleDenoiser", "course_lib.toy.OracleDenoiser",
                    "course_lib.toy.GaussianMixture2D.noised_score", "course_lib.toy.GaussianMixture2D.denoised")),
    Exercise(name="leak_repair_weight",
             lesson=LESSON,
             points=1,
             public_cases=_leak_public,
             tolerance=1e-6,
             call=_leak_call,
             hint="write the leaky prediction and CFG's extrapolation as combinations of the exact conditional and "
                  "unconditional predictions, and ask when the unconditional part cancels (section 3)"),
]
