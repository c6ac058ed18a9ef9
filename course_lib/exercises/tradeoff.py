"""Graded exercises of lesson 04 (the quality-diversity trade-off)."""

from __future__ import annotations

import torch

from .. import metrics
from .core import Exercise

LESSON = "04_quality_diversity_tradeoff"


def _precision(real: torch.Tensor, fake: torch.Tensor, k: int) -> float:
    """Improved precision (Kynkaanniemi et al. 2019), as :func:`metrics.precision_recall`."""
    return metrics.precision_recall(real, fake, k=k)[0]


def _knn_public(gen: torch.Generator) -> list[tuple]:
    real, fake = torch.randn(300, 2, generator=gen), 0.5 * torch.randn(200, 2, generator=gen) + 1.0
    return [(a, b, k) for k in (1, 5) for a, b in ((real, fake), (fake, real))]


def _knn_hidden(gen: torch.Generator) -> list[tuple]:
    real, fake = torch.randn(150, 2, generator=gen), 0.7 * torch.randn(120, 2, generator=gen) + 0.8
    far = fake + 100.0
    return [(real, fake, 1), (real, fake, 10), (fake, real, 3), (real, real.clone(), 5),   # same set: precision 1
            (real, far, 5), (real.double(), fake.double(), 2)]                             # far away: precision 0


EXERCISES = [
    Exercise(name="knn_precision", lesson=LESSON, points=1, public_cases=_knn_public, hidden_cases=_knn_hidden,
             reference=_precision, tolerance=1e-6,
             hint="a ball's radius is the distance to the k-th nearest *other* real point; reread the precision "
                  "section on how the balls are built"),
]
