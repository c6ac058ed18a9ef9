"""Explicit conditioning: labelled pairs ``(x, y)``, label dropout, and the learned
conditionals ``p_theta(x | y)`` set beside the exact ones, class by class.

One network ``eps_theta(x_t, t; y)`` trained on pairs learns every conditional
``p(x | y)`` at once (DESIGN.md section 1); with the null label ``y = K`` it is
the unconditional ``eps_theta(x_t, t)`` of the same data (section 3). Used by
lesson 01 and by every later lesson that asks "how close is each class?".

On 2-D mixtures each class is scored against its exact law (:func:`fit_by_class`).
On MNIST nothing is exact: samples drawn with the label alone
(:func:`sample_with_labels`) are graded by an independent judge classifier
(:func:`judge_verdicts`, :func:`confusion_matrix`, :func:`per_class_accuracy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import diffusion, metrics, plots
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


# --------------------------------------------------------------------------- images (MNIST)

def _label_list(labels: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``labels`` as a long tensor ``[L]`` of non-negative integers."""
    if isinstance(labels, torch.Tensor):
        values = labels.tolist() if labels.ndim == 1 and labels.dtype == torch.long else None
    else:
        values = list(labels) if isinstance(labels, (list, tuple, range)) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"labels must be a non-empty sequence of non-negative integers, got {labels!r}")
    return torch.tensor(values, dtype=torch.long)


@torch.no_grad()
def sample_with_labels(model: torch.nn.Module, labels: torch.Tensor, x_T: torch.Tensor,
                       schedule: diffusion.Schedule, *, steps: int | None = 50, eta: float = 0.0,
                       generator: torch.Generator | None = None, clip: float | None = None) -> torch.Tensor:
    """Samples ``[B, ...]`` drawn with the label alone, no guidance: sample ``i`` follows
    ``eps_theta(x_t, t; labels[i])`` from the starting noise ``x_T[i]``.

    ``labels [B]`` may hold the null label ``K = model.num_classes`` (unconditional).
    In lesson 3's terms this is classifier-free guidance at ``w = 0`` (``w = -1`` for
    the null label), in one forward pass per step instead of two. Sampling is
    :func:`course_lib.diffusion.sample` (DDIM over ``steps``; ``eta = 0`` deterministic,
    so ``x_T`` alone decides each sample; ``eta > 0`` draws fresh noise from
    ``generator``). ``clip``: clamp the result to ``[-clip, clip]`` (``1.0`` for MNIST,
    whose pixels lie in ``[-1, 1]``)."""
    K = getattr(model, "num_classes", None)
    if not isinstance(K, int):
        raise ValueError("model must be a conditional model with an integer num_classes (its null label)")
    if not isinstance(x_T, torch.Tensor) or x_T.ndim < 2 or not x_T.is_floating_point() \
            or not torch.isfinite(x_T).all():
        raise ValueError("x_T must be a finite float tensor [B, ...] of starting noise")
    labels = check_labels(labels, x_T.shape[0], K, name="labels", allow_null=True)
    if not isinstance(schedule, diffusion.Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    T = getattr(model, "T", schedule.T)
    if schedule.T != T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={T}")
    if clip is not None and not (isinstance(clip, (int, float)) and not isinstance(clip, bool)
                                 and math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be None or a finite number > 0, got {clip!r}")
    x0 = diffusion.sample(model_eps_fn(model, labels, K), tuple(x_T.shape), schedule, steps=steps, eta=eta,
                          generator=generator, x_T=x_T)
    return x0 if clip is None else x0.clamp(-clip, clip)


def noise_under_labels(x_T: torch.Tensor, labels: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every starting noise under every label: ``x_T [R, ...]`` and ``L`` labels give
    ``(noise [R * L, ...], y [R * L])``, row by row: entry ``r * L + j`` is noise ``r``
    under ``labels[j]``. Drawn ``L`` to a row, a row shares its noise and a column its label."""
    if not isinstance(x_T, torch.Tensor) or x_T.ndim < 2 or x_T.shape[0] < 1 or not x_T.is_floating_point():
        raise ValueError("x_T must be a float tensor [R, ...] of R starting noises")
    y = _label_list(labels)
    return x_T.repeat_interleave(len(y), dim=0), y.repeat(x_T.shape[0])


@torch.no_grad()
def judge_verdicts(judge: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The digit ``[N]`` (long) that the judge classifier ``judge(images) -> logits [N, K]``
    sees in each image: the argmax of its logits, in batches of ``batch_size``."""
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or images.shape[0] < 1:
        raise ValueError("images must be a tensor [N, ...] holding at least one image")
    return torch.cat([judge(chunk).argmax(1) for chunk in images.split(batch_size)])


def confusion_matrix(asked: torch.Tensor, judged: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``[K + 1, K]`` (long): entry ``[k, j]`` is how many samples asked for label ``k``
    the judge called ``j``. Row ``K`` holds the samples drawn with the null label, so its
    counts, divided by their sum, are the class shares of the unconditional samples."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(asked, torch.Tensor) or asked.ndim != 1:
        raise ValueError(f"asked must be a 1-D long tensor of labels in 0..{num_classes}")
    asked = check_labels(asked, asked.shape[0], num_classes, name="asked", allow_null=True)
    judged = check_labels(judged, asked.shape[0], num_classes, name="judged")
    flat = asked.cpu() * num_classes + judged.cpu()
    return torch.bincount(flat, minlength=(num_classes + 1) * num_classes).reshape(num_classes + 1, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """The share ``[K]`` (float64) of the samples asked for each label ``k`` that the judge
    called ``k``: the diagonal of a :func:`confusion_matrix` over its row sums (NaN for a
    label with no samples). The null-label row is not a class and is left out."""
    if not isinstance(confusion, torch.Tensor) or confusion.ndim != 2 \
            or confusion.shape[0] not in (confusion.shape[1], confusion.shape[1] + 1) or confusion.shape[1] < 1:
        raise ValueError("confusion must be a [K + 1, K] (or [K, K]) matrix of counts")
    K = confusion.shape[1]
    counts = confusion[:K].double()
    totals = counts.sum(1)
    return torch.where(totals > 0, counts.diagonal() / totals.clamp(min=1), torch.full_like(totals, float("nan")))


def plot_confusion(confusion: torch.Tensor, ax=None, *, title: str | None = None, null_name: str = "∅"):
    """Draw a :func:`confusion_matrix` as row shares: rows the label asked for (the last
    one, if present, the null label ``null_name``), columns the judge's verdict, each
    cell its share of the row in percent. Returns the axes."""
    import matplotlib.pyplot as plt

    if not isinstance(confusion, torch.Tensor) or confusion.ndim != 2 \
            or confusion.shape[0] not in (confusion.shape[1], confusion.shape[1] + 1):
        raise ValueError("confusion must be a [K + 1, K] (or [K, K]) matrix of counts")
    K = confusion.shape[1]
    counts = confusion.double()
    shares = (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * K + 1.5, 0.45 * confusion.shape[0] + 1.0), layout="constrained")
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
    for (r, c), v in np.ndenumerate(shares):
        if v >= 0.005:
            ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 else "black")
    rows = [str(k) for k in range(K)] + ([null_name] if confusion.shape[0] > K else [])
    ax.set_xticks(range(K), [str(k) for k in range(K)])
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(length=0)
    ax.grid(False)
    ax.set(xlabel="judged as", ylabel="label asked for")
    if confusion.shape[0] > K:
        ax.axhline(K - 0.5, color="black", linewidth=1.0)
    if title is not None:
        ax.set_title(title)
    return ax


def digit_table(images: torch.Tensor, ncol: int, ax=None, *, col_labels: Sequence | None = None,
                row_labels: Sequence | None = None, title: str | None = None, padding: int = 2):
    """:func:`course_lib.plots.image_grid` of ``images [B, 1, H, W]``, ``ncol`` to a row,
    with a label above each column and, optionally, left of each row. Returns the axes."""
    if not isinstance(ncol, int) or isinstance(ncol, bool) or ncol < 1:
        raise ValueError(f"ncol must be a positive integer, got {ncol!r}")
    ax = plots.image_grid(images, nrow=ncol, ax=ax, padding=padding, title="")
    B, _, H, W = images.shape
    nrows = -(-B // ncol)
    if col_labels is not None:
        col_labels = list(col_labels)
        if len(col_labels) != min(ncol, B):
            raise ValueError(f"col_labels must hold one label per column ({min(ncol, B)}), got {len(col_labels)}")
        for c, text in enumerate(col_labels):
            ax.text(padding + c * (W + padding) + (W - 1) / 2, -0.5, str(text), ha="center", va="bottom",
                    fontsize=9)
    if row_labels is not None:
        row_labels = list(row_labels)
        if len(row_labels) != nrows:
            raise ValueError(f"row_labels must hold one label per row ({nrows}), got {len(row_labels)}")
        for r, text in enumerate(row_labels):
            ax.text(-1.0, padding + r * (H + padding) + (H - 1) / 2, str(text), ha="right", va="center",
                    fontsize=8)
    if title is not None:
        ax.set_title(title, pad=14 if col_labels is not None else 6)
    return ax
