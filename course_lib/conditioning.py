"""Explicit conditioning: labelled pairs ``(x, y)``, label dropout, and the learned
conditionals ``p_theta(x | y)`` set beside the exact ones, class by class.

One network ``eps_theta(x_t, t; y)`` trained on pairs learns every conditional
``p(x | y)`` at once (DESIGN.md section 1); with the null label ``y = K`` it is
the unconditional ``eps_theta(x_t, t)`` of the same data (section 3). Used by
lesson 01 and by every later lesson that asks "how close is each class?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import diffusion, metrics
from .guidance import check_labels, model_eps_fn
from .toy import GaussianMixture2D


def drop_labels(y: torch.Tensor, p_uncond: float, null_label: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label of ``y [B]`` by ``null_label`` with probability ``p_uncond``
    (label dropout, Ho & Salimans 2021, Algorithm 1), one uniform draw per label
    from ``generator``, as :func:`course_lib.train.train_diffusion` does."""
    if not (isinstance(p_uncond, (int, float)) and not isinstance(p_uncond, bool) and 0 <= p_uncond <= 1):
        raise ValueError(f"p_uncond must be a number in [0, 1], got {p_uncond!r}")
    if not isinstance(null_label, int) or isinstance(null_label, bool) or null_label < 1:
        raise ValueError(f"null_label must be the number of classes K >= 1, got {null_label!r}")
    if not isinstance(y, torch.Tensor) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D long tensor of labels in 0..{null_label}")
    y = check_labels(y, y.shape[0], null_label, allow_null=True)
    drop = torch.rand(y.shape[0], generator=generator) < p_uncond
    return torch.where(drop.to(y.device), torch.full_like(y, null_label), y)


def subsample_class(x: torch.Tensor, y: torch.Tensor, label: int, keep: int | float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled data ``(x [N, ...], y [N])`` with class ``label`` thinned out: ``keep``
    is a count (int) or a fraction in ``(0, 1]`` (float) of that class's examples,
    chosen at random from ``generator``; every other example is kept, in order."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or y.ndim != 1 \
            or y.dtype != torch.long or x.shape[0] != y.shape[0]:
        raise ValueError("x must be a tensor [N, ...] and y a long tensor [N] of its labels")
    if not isinstance(label, int) or isinstance(label, bool) or not bool((y == label).any()):
        raise ValueError(f"label must be a class present in y, got {label!r}")
    idx = (y == label).nonzero()[:, 0]
    if isinstance(keep, bool) or not isinstance(keep, (int, float)):
        raise ValueError(f"keep must be a count (int) or a fraction (float), got {keep!r}")
    if isinstance(keep, int):
        if not 0 <= keep <= idx.numel():
            raise ValueError(f"keep must lie in 0..{idx.numel()} (examples of class {label}), got {keep}")
        count = keep
    else:
        if not (math.isfinite(keep) and 0 < keep <= 1):
            raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
        count = max(1, round(keep * idx.numel()))
    chosen = idx[torch.randperm(idx.numel(), generator=generator)[:count]]
    mask = y != label
    mask[chosen] = True
    return x[mask], y[mask]


@torch.no_grad()
def sample_by_label(model: torch.nn.Module, labels: Sequence[int], n: int, schedule: diffusion.Schedule, *,
                    steps: int | None = 100, eta: float = 1.0, seed: int = 0) -> dict[int, torch.Tensor]:
    """``n`` samples ``[n, 2]`` of ``p_theta(x | y)`` for each ``y`` in ``labels``
    (``y = model.num_classes`` is the null label: ``p_theta(x)``), each drawn with
    :func:`course_lib.diffusion.sample` from its own generator seeded ``seed + y``."""
    K = model.num_classes
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    out = {}
    for y in labels:
        if not isinstance(y, int) or isinstance(y, bool) or not 0 <= y <= K:
            raise ValueError(f"labels must be integers in 0..{K} ({K} is the null label), got {y!r}")
        out[y] = diffusion.sample(model_eps_fn(model, y, K), (n, getattr(model, "data_dim", 2)), schedule, steps=steps, eta=eta,
                                  generator=torch.Generator().manual_seed(seed + y))
    return out


@dataclass(frozen=True)
class ClassFit:
    """How well samples of one label match the exact law: ``sw`` is the sliced-Wasserstein
    distance to exact samples of the same size, ``floor`` the same distance between two
    exact sample sets (sampling noise alone); ``agreement`` the share of samples whose
    exact Bayes label ``argmax_k p(k | x)`` is ``label``, ``exact_agreement`` the same
    share for exact samples (below one where classes overlap). ``label = K``: the marginal,
    agreements NaN."""

    label: int
    n: int
    sw: float
    floor: float
    agreement: float
    exact_agreement: float


def fit_by_class(samples: dict[int, torch.Tensor], mixture: GaussianMixture2D, *, seed: int = 0) -> dict[int, ClassFit]:
    """Compare ``samples[y] [n, 2]`` with the exact ``p(x | y)`` of ``mixture``
    (``y = K``: the marginal ``p(x)``), label by label. The two exact sets are drawn
    from generators seeded ``seed + 2y`` and ``seed + 2y + 1``."""
    K = mixture.num_classes
    fits = {}
    for y, x in samples.items():
        if not isinstance(y, int) or isinstance(y, bool) or not 0 <= y <= K:
            raise ValueError(f"samples must be keyed by labels in 0..{K} ({K}: the marginal), got {y!r}")
        n, cond = x.shape[0], (y if y < K else None)
        ref = mixture.sample(n, y=cond, generator=torch.Generator().manual_seed(seed + 2 * y))[0]
        other = mixture.sample(n, y=cond, generator=torch.Generator().manual_seed(seed + 2 * y + 1))[0]
        if cond is None:
            agreement = exact_agreement = float("nan")
        else:
            agreement = float((mixture.posterior(x).argmax(1) == y).double().mean())
            exact_agreement = float((mixture.posterior(ref).argmax(1) == y).double().mean())
        fits[y] = ClassFit(y, n, metrics.sliced_wasserstein(x, ref), metrics.sliced_wasserstein(other, ref),
                           agreement, exact_agreement)
    return fits
