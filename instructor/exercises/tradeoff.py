"""Instructor half of the exercises of tradeoff: references, hidden cases, what each tests."""

from __future__ import annotations

import math
from typing import Sequence
import torch
from course_lib import data, diffusion, guidance, pretrained, sample_metrics, sweeps, toy
from course_lib.exercises.tradeoff import _COSINE, _LINEAR, _leak_case, leaky_mixture
from .core import Grading


def _shrink_reference(mean: torch.Tensor, cov: torch.Tensor, centre: torch.Tensor, c: float) -> float:
    """:func:`sample_metrics.frechet_gaussians` between ``N(mean, cov)`` and the law of ``c x + (1 - c) centre``,
    ``N(c mean + (1 - c) centre, c^2 cov)``; in closed form ``(1 - c)^2 (|centre - mean|^2 + tr cov)``."""
    mean, cov, centre = mean.double(), cov.double(), centre.double()
    return sample_metrics.frechet_gaussians(mean, cov, c * mean + (1 - c) * centre, c**2 * cov)


def _shrink_hidden(gen: torch.Generator) -> list[tuple]:
    aniso = toy.anisotropic()
    m, s, a = aniso.means[2].clone(), aniso.covs[2].clone(), torch.randn(2, generator=gen, dtype=torch.float64)
    q = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    return [(m, s, a, 1.0),                                        # no shrinkage: 0
            (m, s, a, 0.0),                                        # collapse onto the point
            (m, s, m.clone(), 0.5),                                # towards the class's own mean
            (m, s, a, 2.5),                                        # a spread, not a shrinkage
            (m.float(), s.float(), a.float(), 0.8),                # float32
            (torch.randn(5, generator=gen, dtype=torch.float64), q @ q.T + 0.1 * torch.eye(5, dtype=torch.float64),
             torch.randn(5, generator=gen, dtype=torch.float64), 0.4)]   # five dimensions


def _ddim_reference(var: float, schedule: diffusion.Schedule, steps: int) -> float:
    """Deterministic DDIM (``diffusion.sample``, ``eta = 0``) on the exact eps of ``N(0, var)`` (a 2-D isotropic
    Gaussian, first coordinate) from ``x_T = 1``: the output divided by ``sqrt(var)``."""
    gauss = toy.GaussianMixture2D(torch.zeros(1, 2), var * torch.eye(2)[None], torch.ones(1))
    x = diffusion.sample(gauss.eps_fn(schedule), (1, 2), schedule, steps=steps, eta=0.0,
                         x_T=torch.ones(1, 2, dtype=torch.float64), dtype=torch.float64)
    return float(x[0, 0]) / math.sqrt(var)


def _ddim_hidden(gen: torch.Generator) -> list[tuple]:
    v = 0.05 + 3 * torch.rand((), generator=gen).item()
    return [(v, _LINEAR, 2), (v, _LINEAR, 1000), (0.01, _LINEAR, 20), (25.0, _LINEAR, 20),
            (v, _COSINE, 10), (1.0, _COSINE, 200)]


def _leak_reference(mixture: toy.GaussianMixture2D, schedule: diffusion.Schedule, y: int, lam: float,
                    x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact conditional prediction that the repair must give back."""
    return mixture.eps_fn(schedule, y)(x, t)


def _leak_hidden(gen: torch.Generator) -> list[tuple]:
    lam = 0.05 + 0.8 * torch.rand((), generator=gen).item()
    return [_leak_case(toy.anisotropic(), _LINEAR, 1, 0.0, 50, None, gen),       # no leak: nothing to repair
            _leak_case(toy.anisotropic(), _LINEAR, 0, lam, 50, 0, gen),         # t = 0
            _leak_case(toy.anisotropic(), _LINEAR, 2, 0.9, 50, 999, gen),       # a strong leak at t = T - 1
            _leak_case(toy.unequal_weights(), _COSINE, 2, lam, 1, None, gen),   # another mixture, a batch of one
            _leak_case(toy.ring(), _LINEAR, 3, 0.75, 60, None, gen)]


def _best(rows: list[dict]) -> dict:
    """The row of smallest sliced-Wasserstein distance to the target."""
    return min(rows, key=lambda r: r["sw"])


def expected_sampler_optima(steps: Sequence[int] = (10, 20, 50, 200), *, y: int = 1, n: int = 1000, seed: int = 4,
                            ws: Sequence[float] = tuple(round(-0.5 + 0.1 * i, 1) for i in range(16)),
                            ) -> dict[int, tuple[float, float]]:
    """Exercise "Fewer steps, another optimum": for each number of deterministic DDIM ``steps``, the
    exact model's best ``w`` (smallest SW to ``p(x | y)``) and its diversity at ``w = 0``, on class ``y``
    of ``toy.anisotropic()`` (linear schedule, T = 1000, the same noise for every setting)."""
    out = {}
    for s in steps:
        rows = sweeps.sweep_2d(toy.anisotropic(), _LINEAR, y, ws=ws, n=n, steps=s, seed=seed, k=None)
        at_zero = next(r for r in rows if r["w"] == 0.0)
        out[s] = (_best(rows)["w"], at_zero["diversity"])
    return out


def expected_leak_optima(lams: Sequence[float] = (0.1, 0.2, 0.3, 0.4), *, y: int = 1, n: int = 1000,
                         steps: int = 50, seed: int = 4,
                         ws: Sequence[float] = tuple(round(0.1 * i, 1) for i in range(21))) -> dict[float, float]:
    """Exercise "How big a leak, how big a weight?": for each ``lam``, the best ``w`` (smallest SW to
    ``p(x | y)``) of CFG with the leaky conditional :func:`leaky_mixture` and the exact unconditional
    model, on class ``y`` of ``toy.anisotropic()`` through ``steps`` deterministic DDIM steps."""
    mixture = toy.anisotropic()
    pairs = {lam: (leaky_mixture(mixture, y, lam).eps_fn(_LINEAR), mixture.eps_fn(_LINEAR)) for lam in lams}
    rows = sweeps.sweep_2d(mixture, _LINEAR, y, pairs=pairs, ws=ws, n=n, steps=steps, seed=seed, k=None)
    return {lam: _best([r for r in rows if r["model"] == lam])["w"] for lam in lams}


def expected_mnist_optima(seeds: Sequence[int] = (0, 1, 2), *, ws: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0,
                                                                                       2.0, 3.0, 5.0),
                          m: int = 20, steps: int = 20) -> dict[int, dict[float, float]]:
    """Exercise "How sure is the best weight?": the Frechet distance (judge features) of the shipped
    ``mnist_cfg`` at every ``w``, per noise ``seed`` of :func:`sweeps.sweep` (``m`` digits per class,
    ``steps`` DDIM steps), against the training digits."""
    cfg, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge").model
    reference = sample_metrics.judge_features(judge, data.load_mnist("train")[0])
    return {seed: {r["w"]: r["frechet"] for r in sweeps.sweep(cfg.model, judge, reference, ws=ws, m=m, steps=steps,
                                                              seed=seed, schedule=cfg.schedule)}
            for seed in seeds}


GRADING = [
    Grading(name="frechet_of_shrinkage", reference=_shrink_reference, hidden_cases=_shrink_hidden,
            understanding="the law of an affine map of a Gaussian, and FID's cross term when one covariance is c^2 "
                          "times the other: (1 - c)^2 (|centre - mean|^2 + tr cov), what a collapse towards a point costs",
            shortcut="no cell shows the distance's formula or its closed form here; sample_metrics.frechet_gaussians and "
                     "frechet_distance are twins, and the hidden cases (c = 0, 1, > 1, five dimensions) catch "
                     "(1 - c^2) for (1 - c)^2 or a forgotten trace term"),
    Grading(name="ddim_shrink", reference=_ddim_reference, hidden_cases=_ddim_hidden,
            understanding="why few-step deterministic DDIM shrinks a class with the exact score: for a Gaussian the "
                          "exact eps is linear in x_t, so each DDIM step scales the deviation by a factor < or > 1",
            shortcut="the lesson only measures the shrinkage; diffusion.sample, ddim_step and the mixture's eps are "
                     "twins, and the hidden cases (2 steps, all 1000, tiny and wide variances, the cosine schedule) "
                     "check the product, not a fitted curve"),
    Grading(name="leak_repair_weight", reference=_leak_reference, hidden_cases=_leak_hidden,
            understanding="CFG's weights sum to one: (1+w)((1-lam) c + lam u) - w u has no u exactly when "
                          "(1+w) lam = w, i.e. w = lam / (1 - lam), and that repairs the prediction at every x_t and t",
            shortcut="no library function solves for a weight and no cell states the answer; the check runs CFG at "
                     "the returned weight on exact predictions, so only the exact cancellation passes"),
]
