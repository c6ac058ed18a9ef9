"""Instructor half of the exercises of tradeoff: references, hidden cases, what each tests."""

from __future__ import annotations

import math
from typing import Sequence
import torch
from course_lib import data, diffusion, evaluate, guidance, metrics, pretrained, sweeps, toy
from course_lib.exercises.core import Exercise
from course_lib.exercises.tradeoff import _COSINE, _LINEAR, _class_case, _leak_case
from .core import Grading


def _precision(real: torch.Tensor, fake: torch.Tensor, k: int) -> float:
    """Improved precision (Kynkaanniemi et al. 2019), as :func:`metrics.precision_recall`."""
    return metrics.precision_recall(real, fake, k=k)[0]


def _knn_hidden(gen: torch.Generator) -> list[tuple]:
    real, fake = torch.randn(150, 2, generator=gen), 0.7 * torch.randn(120, 2, generator=gen) + 0.8
    far = fake + 100.0
    return [(real, fake, 1), (real, fake, 10), (fake, real, 3), (real, real.clone(), 5),   # same set: precision 1
            (real, far, 5), (real.double(), fake.double(), 2), (real, fake[:3], 2),       # far away: 0; three fakes
            (torch.randn(80, 5, generator=gen), torch.randn(60, 5, generator=gen), 3)]    # five dimensions


def _frechet_to_class(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """:func:`metrics.frechet_gaussians` between the samples' fitted Gaussian (mean, unbiased
    covariance) and the exact ``N(mean, cov)``."""
    x = x.double()
    return metrics.frechet_gaussians(x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1]), mean, cov)


def _frechet_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, other = toy.anisotropic(), toy.unequal_weights()
    a, b = (0.3 + torch.rand(2, generator=gen)).tolist()
    return [_class_case(aniso, 0, 400, (a, b), 0.0, gen),
            _class_case(aniso, 2, 300, (1.3, 0.5), -0.4, gen),
            _class_case(other, 2, 200, (b, a), 0.2, gen),            # another mixture
            _class_case(aniso, 1, 4, (1.0, 1.0), 0.0, gen),          # a handful of samples: the unbiased covariance
            tuple(v.double() for v in _class_case(aniso, 1, 50, (0.8, 1.2), 0.1, gen))]


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


def leaky_mixture(mixture: toy.GaussianMixture2D, y: int, lam: float) -> toy.GaussianMixture2D:
    """A conditional model of class ``y`` that leaks a share ``lam`` of its mass to every class in
    proportion to the class weights: the mixture with weights ``(1 - lam) e_y + lam pi`` (one component
    per class). Its unconditional ``eps_fn`` is that model's exact conditional prediction."""
    if not 0 < lam < 1:
        raise ValueError(f"lam must lie strictly between 0 and 1 (every class keeps some weight), got {lam!r}")
    guidance.check_labels(y, 1, mixture.num_classes)
    if mixture.num_components != mixture.num_classes:
        raise ValueError("mixture must have one component per class")
    one_hot = torch.eye(mixture.num_components, dtype=torch.float64)[y]
    return toy.GaussianMixture2D(mixture.means, mixture.covs, lam * mixture.weights + (1 - lam) * one_hot)


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
    reference = evaluate.judge_features(judge, data.load_mnist("train")[0])
    return {seed: {r["w"]: r["frechet"] for r in sweeps.sweep(cfg.model, judge, reference, ws=ws, m=m, steps=steps,
                                                              seed=seed, schedule=cfg.schedule)}
            for seed in seeds}


GRADING = [
    Grading(name="knn_precision", reference=_precision, hidden_cases=_knn_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="frechet_to_class", reference=_frechet_to_class, hidden_cases=_frechet_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="leak_repair_weight", reference=_leak_reference, hidden_cases=_leak_hidden,
            understanding="TODO", shortcut="TODO"),
]
