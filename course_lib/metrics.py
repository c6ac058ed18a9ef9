"""Distances between sample sets, used to set learned samples beside exact ones."""

from __future__ import annotations

import torch


def _check_samples(a: torch.Tensor, b: torch.Tensor) -> None:
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, torch.Tensor) or s.ndim != 2 or s.shape[0] < 2:
            raise ValueError(f"{name} must be a tensor [n, d] with n >= 2")
        if not torch.isfinite(s).all():
            raise ValueError(f"{name} must be finite")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must share their dimension, got {a.shape[1]} and {b.shape[1]}")


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between samples ``a [n, d]`` and ``b [m, d]``:
    ``sqrt(mean over random unit directions u of W_2^2(u.a, u.b))``, each 1-D
    ``W_2`` computed from matched quantiles (Rabin et al. 2011). Directions come
    from ``seed``, so repeated calls compare like with like."""
    _check_samples(a, b)
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], num_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = a.double().cpu() @ dirs, b.double().cpu() @ dirs
    levels = (torch.arange(max(a.shape[0], b.shape[0]), dtype=torch.float64) + 0.5) / max(a.shape[0], b.shape[0])
    qa = torch.quantile(pa, levels, dim=0) if pa.shape[0] != levels.numel() else pa.sort(dim=0).values
    qb = torch.quantile(pb, levels, dim=0) if pb.shape[0] != levels.numel() else pb.sort(dim=0).values
    return float(((qa - qb) ** 2).mean().sqrt())
