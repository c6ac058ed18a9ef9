"""How good are samples: distances between sample sets, and scores against the truth.

Generic (2-D points and digit features alike): the sliced-Wasserstein distance, the Frechet
distance :func:`frechet_distance` (Heusel et al. 2017; :func:`frechet_gaussians` is its closed
form between two Gaussians), k-NN precision and recall (Kynkaanniemi et al. 2019), the mean
pairwise distance (diversity) and the relative error of an estimate.

2-D: :func:`score_2d` is the one scorer of samples meant to follow ``p(x | y)``:
the mean exact posterior ``p(y | x)`` (a perfect classifier as the judge), the
sliced-Wasserstein distance to exact samples, the diversity, precision and recall and, given a
plot extent, how many samples fell off it. :func:`fit_by_class` applies it label by label,
beside the noise floor of two exact sample sets; :func:`toy_cfg_report` compares learned CFG
with exact CFG.

MNIST: nothing is exact, so a clean classifier that never steers sampling (the
``mnist_judge``) grades it: :func:`judge_verdicts`, :func:`judged_accuracy`,
:func:`confusion_matrix`, :func:`per_class_accuracy`, :func:`within_class_diversity`, and the
Frechet distance on its features: ``frechet_distance(judge_features(judge, a),
judge_features(judge, b))``. How good a *classifier* is, against ``t``, is
:mod:`course_lib.classifier_metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import diffusion, guidance, validate
from .conditional import cfg_grid, grid_labels, grid_noise
from .data import check_digits
from .toy import GaussianMixture2D

# --------------------------------------------------------------------------- between sample sets


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
    validate.integer(k, "k", minimum=1, maximum=min(real.shape[0], fake.shape[0]) - 1)
    real, fake = real.double().reshape(real.shape[0], -1), fake.double().reshape(fake.shape[0], -1)

    def coverage(support: torch.Tensor, query: torch.Tensor) -> float:
        radii = torch.cdist(support, support).kthvalue(k + 1, dim=1).values  # +1 skips the point itself
        return float((torch.cdist(query, support) <= radii[None]).any(dim=1).double().mean())

    return coverage(real, fake), coverage(fake, real)


# --------------------------------------------------------------------------- 2-D, against the exact law


def _agreement(x: torch.Tensor, mixture: GaussianMixture2D, y: int) -> float:
    """Share of ``x`` whose exact Bayes label ``argmax_k p(k | x)`` is ``y``."""
    return float((mixture.posterior(x.double()).argmax(1) == y).double().mean())


def score_2d(samples: torch.Tensor, mixture: GaussianMixture2D, y: int | None, reference: torch.Tensor, *,
             k: int | None = 5, extent: Sequence[float] | None = None) -> dict[str, float]:
    """Samples ``[n, 2]`` meant to follow ``p(x | y)`` (``y=None``: the marginal ``p(x)``) scored
    against ``reference``, exact samples of the same law:

    - ``posterior``: the mean exact ``p(y | x)`` of the samples (1: unmistakably class ``y``);
    - ``agreement``: the share whose exact Bayes label is ``y`` (both NaN for ``y=None``);
    - ``sw``: sliced-Wasserstein distance to ``reference``;
    - ``diversity``: mean pairwise distance (:func:`course_lib.mean_pairwise_distance`);
    - ``precision``, ``recall``: k-NN precision and recall against ``reference`` (only when ``k``
      is given);
    - ``off_plot``: how many samples lie outside ``extent = (xmin, xmax, ymin, ymax)`` (only when given).

    Non-finite samples (a diverged sampler) are left out of every score and counted in ``off_plot``.

    Args:
        samples: ``[n, 2]`` one tensor (for a dict ``{label: [n, 2]}``, use :func:`fit_by_class`).
        y: ``None`` or a label, an int in ``0..K-1``.
        reference: ``[m, 2]`` exact samples, ``m >= 2`` (``m > k`` when ``k`` is given)."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError("samples must be a tensor of shape [n, 2]")
    if y is not None:
        validate.labels(y, 1, mixture.num_classes)
    finite = torch.isfinite(samples).all(dim=1)
    kept = samples[finite]
    out = {"posterior": float("nan"), "agreement": float("nan")}
    if y is not None:
        out = {"posterior": float(mixture.posterior(kept.double())[:, y].mean()),
               "agreement": _agreement(kept, mixture, y)}
    out["sw"] = sliced_wasserstein(kept, reference)
    out["diversity"] = mean_pairwise_distance(kept)
    if k is not None:
        out["precision"], out["recall"] = precision_recall(reference, kept, k=k)
    if extent is not None:
        e = [float(v) for v in extent]
        if len(e) != 4 or not all(math.isfinite(v) for v in e) or e[0] >= e[1] or e[2] >= e[3]:
            raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, "
                             f"got {extent!r}")
        inside = finite & (samples[:, 0] >= e[0]) & (samples[:, 0] <= e[1]) & (samples[:, 1] >= e[2]) \
            & (samples[:, 1] <= e[3])
        out["off_plot"] = int((~inside).sum())
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
    """:func:`score_2d` of ``samples[y]`` against the exact ``p(x | y)`` of ``mixture``
    (``y = K``: the marginal ``p(x)``), label by label. The two exact sets are drawn
    from generators seeded ``seed + 2y`` and ``seed + 2y + 1``.

    Args:
        samples: label ``y`` in ``0..K`` -> its samples ``[n_y, 2]`` (``n_y`` may differ by label)."""
    K = mixture.num_classes
    fits = {}
    for y, x in samples.items():
        validate.integer(y, "samples key", minimum=0, maximum=K, hint=f" (a label; {K}: the marginal)")
        n, cond = x.shape[0], (y if y < K else None)
        ref = mixture.sample(n, y=cond, generator=torch.Generator().manual_seed(seed + 2 * y))[0]
        other = mixture.sample(n, y=cond, generator=torch.Generator().manual_seed(seed + 2 * y + 1))[0]
        score = score_2d(x, mixture, cond, ref, k=None)
        exact_agreement = float("nan") if cond is None else _agreement(ref, mixture, cond)
        fits[y] = ClassFit(y, n, score["sw"], sliced_wasserstein(other, ref), score["agreement"],
                           exact_agreement)
    return fits


@torch.no_grad()
def toy_cfg_report(model: torch.nn.Module, mixture: GaussianMixture2D, schedule: diffusion.Schedule, *,
                   ws: tuple[float, ...] = (0.0, 3.0), n: int = 2000, steps: int | None = 50,
                   seed: int = 0) -> list[dict]:
    """Per class ``k`` and weight ``w``: the sliced Wasserstein distance between the
    model's CFG samples and the exact ones, and the noise floor (two exact sets).
    The exact reference is ``p(x | y=k)`` itself at ``w = 0`` and the exact CFG
    through the same sampler (DDIM with ``eta = 1``; ``steps=None``: DDPM) otherwise."""
    K, rows = mixture.num_classes, []
    for w in ws:
        for k in range(K):
            gens = [torch.Generator().manual_seed(seed + 1000 * i + 10 * k + int(4 * w)) for i in range(3)]
            draw = lambda fn, g: diffusion.sample(fn, (n, 2), schedule, steps=steps, eta=1.0, generator=g)  # noqa: E731
            learned = draw(guidance.model_cfg_eps_fn(model, k, w, K), gens[0])
            if w == 0.0:
                ref_a, ref_b = (mixture.sample(n, y=k, generator=g)[0] for g in gens[1:])
            else:
                exact = guidance.cfg(mixture.eps_fn(schedule, k), mixture.eps_fn(schedule), w)
                ref_a, ref_b = (draw(exact, g) for g in gens[1:])
            rows.append({"class": k, "w": w, "steps": steps, "n": n,
                         "sw": round(sliced_wasserstein(learned, ref_a), 4),
                         "floor": round(sliced_wasserstein(ref_a, ref_b), 4)})
    return rows


# --------------------------------------------------------------------------- MNIST, by the judge

@torch.no_grad()
def judge_verdicts(judge: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The digit ``[N]`` (long) that the judge classifier ``judge(images) -> logits [N, K]``
    sees in each image: the argmax of its logits, in batches of ``batch_size``.

    Args:
        images: ``[N, ...]`` as ``judge`` takes them (MNIST: ``[N, 1, 28, 28]`` in ``[-1, 1]``)."""
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or images.shape[0] < 1:
        raise ValueError("images must be a tensor [N, ...] holding at least one image")
    return torch.cat([judge(chunk).argmax(1) for chunk in images.split(batch_size)])


@torch.no_grad()
def judged_accuracy(judge: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` that the independent ``judge`` classifies as the digit they were asked to be.

    Args:
        images: ``[N, 1, 28, 28]`` digits in ``[-1, 1]``.
        labels: ``[N]`` long, the digit each was asked to be, in ``0..9``."""
    check_digits(images, labels, name="images")
    return float((judge_verdicts(judge, images) == labels).double().mean())


@torch.no_grad()
def judge_features(judge: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The judge's penultimate features ``[N, feature_dim]`` of ``images [N, 1, 28, 28]``."""
    check_digits(images, name="images")
    return torch.cat([judge.features(chunk) for chunk in images.split(batch_size)])


def confusion_matrix(asked: torch.Tensor, judged: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``[K + 1, K]`` (long): entry ``[k, j]`` is how many samples asked for label ``k``
    the judge called ``j`` (``sklearn.confusion_matrix``). Row ``K`` holds the samples
    drawn with the null label, so its counts, divided by their sum, are the class shares of
    the unconditional samples.

    Args:
        asked: ``[N]`` long labels asked for, in ``0..K`` (``K``: the null label).
        judged: ``[N]`` long verdicts in ``0..K-1`` (:func:`judge_verdicts`)."""
    validate.integer(num_classes, "num_classes", minimum=1)
    if not isinstance(asked, torch.Tensor) or asked.ndim != 1:
        raise ValueError(f"asked must be a 1-D long tensor of labels in 0..{num_classes}")
    asked = validate.labels(asked, asked.shape[0], num_classes, name="asked", allow_null=True)
    judged = validate.labels(judged, asked.shape[0], num_classes, name="judged")
    from sklearn.metrics import confusion_matrix as sk_confusion  # here: it costs a second at import time

    counts = sk_confusion(asked.cpu().numpy(), judged.cpu().numpy(), labels=list(range(num_classes + 1)))
    return torch.from_numpy(counts[:, :num_classes]).long()


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """The share ``[K]`` (float64) of the samples asked for each label ``k`` that the judge
    called ``k``: the diagonal of a :func:`confusion_matrix` over its row sums (NaN for a
    label with no samples). The null-label row is not a class and is left out.

    Args:
        confusion: ``[K + 1, K]`` (or ``[K, K]``) counts."""
    if not isinstance(confusion, torch.Tensor) or confusion.ndim != 2 \
            or confusion.shape[0] not in (confusion.shape[1], confusion.shape[1] + 1) or confusion.shape[1] < 1:
        raise ValueError("confusion must be a [K + 1, K] (or [K, K]) matrix of counts")
    K = confusion.shape[1]
    counts = confusion[:K].double()
    totals = counts.sum(1)
    return torch.where(totals > 0, counts.diagonal() / totals.clamp(min=1), torch.full_like(totals, float("nan")))


def within_class_diversity(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over digits of the mean pairwise pixel distance between samples of that digit
    (:func:`course_lib.mean_pairwise_distance`); every digit needs two samples.

    Args:
        images: ``[N, 1, 28, 28]`` digits in ``[-1, 1]``.
        labels: ``[N]`` long labels in ``0..9``, each present one at least twice."""
    check_digits(images, labels, name="images")
    per_class = []
    for k in labels.unique().tolist():
        members = images[labels == k]
        if members.shape[0] < 2:
            raise ValueError(f"labels must give every digit at least 2 samples; digit {k} has 1")
        per_class.append(mean_pairwise_distance(members))
    return sum(per_class) / len(per_class)


def judge_cfg_model(model: torch.nn.Module, judge: torch.nn.Module, schedule: diffusion.Schedule | None = None, *,
                    ws: Sequence[float] = (0.0, 1.0, 3.0), per_class: int = 50, steps: int = 50,
                    seed: int = 1000) -> dict[str, float]:
    """Judged accuracy of CFG samples at each weight in ``ws``: ``per_class`` digits of every
    class from the noise ``grid_noise(per_class, seed)`` (the same at every ``w``), DDIM
    ``steps``. Returns ``{"0": acc, "1": acc, "3": acc}`` keyed by ``f"{w:g}"``."""
    x_T, labels = grid_noise(per_class, seed=seed), grid_labels(per_class)
    return {f"{w:g}": judged_accuracy(judge, cfg_grid(model, w, x_T, steps, schedule=schedule), labels) for w in ws}
