"""Distances between sample sets (sliced Wasserstein, Frechet, k-NN precision and recall), their
diversity, and the relative error of an estimate: generic, used on 2-D points and on digits alike."""

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
    from ``seed``, so repeated calls compare like with like.

    Args:
        a: ``[n, d]`` samples, n >= 2.
        b: ``[m, d]`` samples, m >= 2.
        num_projections: how many random directions.
        seed: picks the directions.
    """
    _check_samples(a, b)
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], num_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = a.double().cpu() @ dirs, b.double().cpu() @ dirs
    levels = (torch.arange(max(a.shape[0], b.shape[0]), dtype=torch.float64) + 0.5) / max(a.shape[0], b.shape[0])
    qa = torch.quantile(pa, levels, dim=0) if pa.shape[0] != levels.numel() else pa.sort(dim=0).values
    qb = torch.quantile(pb, levels, dim=0) if pb.shape[0] != levels.numel() else pb.sort(dim=0).values
    return float(((qa - qb) ** 2).mean().sqrt())


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_gaussians(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between ``N(mu_a, S_a)`` and ``N(mu_b, S_b)``:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)`` (Dowson & Landau 1982).

    Args:
        mu_a, mu_b: ``[d]`` means.
        cov_a, cov_b: ``[d, d]`` covariances.
    """
    mu_a, mu_b = torch.as_tensor(mu_a).double().cpu().reshape(-1), torch.as_tensor(mu_b).double().cpu().reshape(-1)
    cov_a, cov_b = torch.as_tensor(cov_a).double().cpu(), torch.as_tensor(cov_b).double().cpu()
    d = mu_a.shape[0]
    if mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(f"mu_a, mu_b must be [d] and cov_a, cov_b [d, d] for one d, got {tuple(mu_a.shape)}, "
                         f"{tuple(mu_b.shape)}, {tuple(cov_a.shape)}, {tuple(cov_b.shape)}")
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(cov_a + cov_b - 2 * cross))


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to features ``a [n, d]`` and ``b [m, d]``:
    :func:`frechet_gaussians` of their means and covariances (Heusel et al. 2017, FID).

    Args:
        a: ``[n, d]`` features.
        b: ``[m, d]`` features.
    """
    _check_samples(a, b)
    a, b = a.double().cpu(), b.double().cpu()
    return frechet_gaussians(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                             b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Diversity of a sample set ``x [n, ...]``: the mean Euclidean distance between distinct pairs
    (``torch.pdist`` over the flattened samples).

    Args:
        x: ``[n, ...]``, n >= 2.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 2:
        raise ValueError("x must be a tensor [n, ...] with n >= 2")
    return float(torch.pdist(x.reshape(x.shape[0], -1).double()).mean())


def relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """``E||a - b||^2 / E||b||^2`` over the rows of ``estimate`` (a) and ``reference`` (b),
    ``[n, ...]`` each, in float64: 0 is perfect, 1 is as far off as predicting zero.

    Args:
        estimate: ``[n, ...]``.
        reference: ``[n, ...]``, the shape of ``estimate``.
    """
    for name, v in (("estimate", estimate), ("reference", reference)):
        if not isinstance(v, torch.Tensor) or v.ndim < 1 or v.shape[0] < 1:
            raise ValueError(f"{name} must be a tensor [n, ...] with n >= 1")
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate and reference must share their shape, got {tuple(estimate.shape)} "
                         f"and {tuple(reference.shape)}")
    a, b = estimate.reshape(estimate.shape[0], -1).double(), reference.reshape(reference.shape[0], -1).double()
    return float(((a - b) ** 2).sum(1).mean() / (b**2).sum(1).mean().clamp_min(1e-300))


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """k-nearest-neighbour precision and recall (Kynkaanniemi et al. 2019): precision
    is the share of ``fake`` inside the union of balls around ``real`` points, each
    of radius its k-th neighbour distance; recall swaps the roles.

    Args:
        real: ``[n, d]``.
        fake: ``[m, d]``.
        k: the neighbour, an int in ``1..min(n, m) - 1``.
        Returns ``(precision, recall)``, two floats in ``[0, 1]``.
    """
    _check_samples(real, fake)
    if not isinstance(k, int) or not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be an integer in 1..{min(real.shape[0], fake.shape[0]) - 1}, got {k!r}")
    real, fake = real.double().reshape(real.shape[0], -1), fake.double().reshape(fake.shape[0], -1)

    def coverage(support: torch.Tensor, query: torch.Tensor) -> float:
        radii = torch.cdist(support, support).kthvalue(k + 1, dim=1).values  # +1 skips the point itself
        return float((torch.cdist(query, support) <= radii[None]).any(dim=1).double().mean())

    return coverage(real, fake), coverage(fake, real)
