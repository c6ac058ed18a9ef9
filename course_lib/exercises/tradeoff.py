"""Exercises of lesson 04 (the quality-diversity trade-off): three graded ones, and what the
end-of-lesson exercises should find.

Graded (hidden cases use what the instant check never shows: ``k = 1``, a batch of one, a set
far away, the same set twice, another class and another mixture, a handful of samples,
``lam = 0`` and a strong leak, ``t = 0`` and ``T - 1``):

- ``knn_precision(real, fake, k)``: k-NN precision (Kynkaanniemi et al. 2019).
- ``frechet_to_class(x, mean, cov)``: the Frechet distance from samples to the exact Gaussian law of
  one class (the FID recipe with the exact mean and covariance on one side).
- ``leak_repair_weight(lam)``: the CFG weight that turns a conditional prediction which mixes in a
  share ``lam`` of the unconditional one back into the exact conditional, checked with the exact
  eps of a 2-D mixture.

End-of-lesson: :func:`expected_sampler_optima` and :func:`expected_leak_optima` compute what
exercises 2 and 3 ask the student to find.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .. import data, diffusion, evaluate, guidance, metrics, pretrained, sweeps, toy
from .core import Exercise

LESSON = "04_quality_diversity_tradeoff"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


# --- knn_precision ------------------------------------------------------------------------------


def _knn_public(gen: torch.Generator) -> list[tuple]:
    real, fake = torch.randn(300, 2, generator=gen), 0.5 * torch.randn(200, 2, generator=gen) + 1.0
    return [(a, b, k) for k in (2, 5) for a, b in ((real, fake), (fake, real))]


# --- frechet_to_class ---------------------------------------------------------------------------


def _class_case(mixture: toy.GaussianMixture2D, y: int, n: int, squeeze: Sequence[float], shift: float,
                gen: torch.Generator) -> tuple:
    """``n`` exact samples of class ``y``, scaled about its mean by ``diag(squeeze)`` (along the plot's
    axes, not the class's: the fitted covariance then does not commute with the exact one) and shifted."""
    x = mixture.sample(n, y, generator=gen)[0]
    centre = mixture.means[y].float()
    return (centre + (x - centre) * torch.tensor(squeeze) + shift, mixture.means[y].clone(), mixture.covs[y].clone())


def _frechet_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_class_case(mixture, 1, 500, (1.0, 1.0), 0.0, gen),     # exact samples: near zero
            _class_case(mixture, 1, 500, (0.6, 0.6), 0.0, gen),     # shrunk towards the mode, as guidance does
            _class_case(mixture, 1, 500, (1.0, 0.4), 0.5, gen)]     # squeezed along one axis and shifted


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
    Exercise(name="knn_precision",
             lesson=LESSON,
             points=1,
             public_cases=_knn_public,
             tolerance=1e-6,
             hint="a ball's radius is the distance to the k-th nearest *other* real point; reread the precision "
                  "part of section 1 on how the balls are built"),
    Exercise(name="frechet_to_class",
             lesson=LESSON,
             points=2,
             public_cases=_frechet_public,
             tolerance=1e-6,
             hint="fit the samples' mean and (unbiased) covariance, then compare two Gaussians as FID does; the "
                  "cross term needs a matrix square root of a product, not a product of square roots"),
    Exercise(name="leak_repair_weight",
             lesson=LESSON,
             points=1,
             public_cases=_leak_public,
             tolerance=1e-6,
             call=_leak_call,
             hint="write the leaky prediction and CFG's extrapolation as combinations of the exact conditional and "
                  "unconditional predictions, and ask when the unconditional part cancels (section 3)"),
]


# --- what the end-of-lesson exercises should find ---------------------------------------------


