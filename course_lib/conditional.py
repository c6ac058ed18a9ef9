"""Sampling with labels: samples per label, every noise under every label, and grids of
digits drawn with classifier-free or classifier guidance from one shared noise.

Samplers never know about labels (docs/conventions.md, "Time, noise and the model interface"): everything here builds an
``eps_fn`` closure with :mod:`course_lib.guidance` and hands it to
:func:`course_lib.diffusion.sample`. A grid of ``m`` samples per digit holds digit
``i % 10`` at position ``i`` (:func:`grid_labels`), so drawn ten to a row each
column is one digit; passing one noise ``x_T`` (:func:`grid_noise`) at every weight
shows what the weight alone changes.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import diffusion, guidance, validate
from .data import IMAGE_SHAPE, NUM_CLASSES


@torch.no_grad()
def sample_by_label(model: torch.nn.Module, labels: Sequence[int], n: int, schedule: diffusion.Schedule, *,
                    steps: int | None = 100, eta: float = 1.0, seed: int = 0) -> dict[int, torch.Tensor]:
    """``n`` samples ``[n, d]`` of ``p_theta(x | y)`` for each ``y`` in ``labels``
    (``y = model.num_classes`` is the null label: ``p_theta(x)``), each drawn with
    :func:`course_lib.diffusion.sample` from its own generator seeded ``seed + y``."""
    K = model.num_classes
    validate.integer(n, "n", minimum=1)
    out = {}
    for i, y in enumerate(labels):
        validate.integer(y, f"labels[{i}]", minimum=0, maximum=K, hint=f" ({K} is the null label)")
        out[y] = diffusion.sample(guidance.model_eps_fn(model, y, K), (n, getattr(model, "data_dim", 2)), schedule,
                                  steps=steps, eta=eta, generator=torch.Generator().manual_seed(seed + y))
    return out


def _label_list(labels: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``labels`` as a long tensor ``[L]`` of non-negative integers."""
    if isinstance(labels, torch.Tensor):
        values = labels.tolist() if labels.ndim == 1 and labels.dtype == torch.long else None
    else:
        values = list(labels) if isinstance(labels, (list, tuple, range)) else None
    if not values:
        raise ValueError(f"labels must be a non-empty sequence of non-negative integers, got {labels!r}")
    for i, v in enumerate(values):
        validate.integer(v, f"labels[{i}]", minimum=0)
    return torch.tensor(values, dtype=torch.long)


@torch.no_grad()
def sample_with_labels(model: torch.nn.Module, labels: torch.Tensor, x_T: torch.Tensor,
                       schedule: diffusion.Schedule, *, steps: int | None = 50, eta: float = 0.0,
                       generator: torch.Generator | None = None, clip: float | None = None) -> torch.Tensor:
    """Samples ``[B, ...]`` drawn with the label alone, no guidance: sample ``i`` follows
    ``eps_theta(x_t, t; labels[i])`` from the starting noise ``x_T[i]``.

    In lesson 3's terms this is classifier-free guidance at ``w = 0`` (``w = -1`` for
    the null label), in one forward pass per step instead of two. Sampling is
    :func:`course_lib.diffusion.sample` (DDIM over ``steps``; ``eta = 0`` deterministic,
    so ``x_T`` alone decides each sample; ``eta > 0`` draws fresh noise from
    ``generator``). ``clip``: clamp the result to ``[-clip, clip]`` (``1.0`` for MNIST,
    whose pixels lie in ``[-1, 1]``).

    Args:
        labels: ``[B]`` long in ``0..K``; ``K = model.num_classes`` is the null label (unconditional).
        x_T: ``[B, ...]`` float starting noise, the model's data shape (``[B, 1, 28, 28]`` for MNIST)."""
    K = getattr(model, "num_classes", None)
    if not isinstance(K, int):
        raise ValueError("model must be a conditional model with an integer num_classes (its null label)")
    if not isinstance(x_T, torch.Tensor) or x_T.ndim < 2 or not x_T.is_floating_point() \
            or not torch.isfinite(x_T).all():
        raise ValueError("x_T must be a finite float tensor [B, ...] of starting noise")
    labels = validate.labels(labels, x_T.shape[0], K, name="labels", allow_null=True)
    if not isinstance(schedule, diffusion.Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    T = getattr(model, "T", schedule.T)
    if schedule.T != T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={T}")
    if clip is not None:
        clip = validate.number(clip, "clip", above=0, hint=" or None")
    x0 = diffusion.sample(guidance.model_eps_fn(model, labels, K), tuple(x_T.shape), schedule, steps=steps,
                          eta=eta, generator=generator, x_T=x_T)
    return x0 if clip is None else x0.clamp(-clip, clip)


def noise_under_labels(x_T: torch.Tensor, labels: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every starting noise under every label: ``x_T [R, ...]`` and ``L`` labels give
    ``(noise [R * L, ...], y [R * L])``, row by row: entry ``r * L + j`` is noise ``r``
    under ``labels[j]``. Drawn ``L`` to a row, a row shares its noise and a column its label.

    Args:
        x_T: ``[R, ...]`` float starting noises.
        labels: ``[L]`` long, or a sequence of ``L`` ints, each ``>= 0`` (the null label allowed)."""
    if not isinstance(x_T, torch.Tensor) or x_T.ndim < 2 or x_T.shape[0] < 1 or not x_T.is_floating_point():
        raise ValueError("x_T must be a float tensor [R, ...] of R starting noises")
    y = _label_list(labels)
    return x_T.repeat_interleave(len(y), dim=0), y.repeat(x_T.shape[0])


# --------------------------------------------------------------------------- digit grids

def grid_labels(m: int) -> torch.Tensor:
    """Labels ``[10 * m]``: ``0, 1, ..., 9`` repeated ``m`` times, so a grid drawn ten
    to a row (``plots.image_grid(images, nrow=10)``) has one digit per column."""
    validate.integer(m, "m", minimum=1, hint=" (samples per digit)")
    return torch.arange(NUM_CLASSES).repeat(m)


def grid_noise(m: int, seed: int = 0) -> torch.Tensor:
    """Starting noise ``x_T [10 * m, 1, 28, 28]`` drawn from ``seed``: pass the same
    tensor at every guidance weight to compare weights on the same noise."""
    grid_labels(m)
    validate.integer(seed, "seed", minimum=0)
    return torch.randn((NUM_CLASSES * m, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


def _grid_size(x_T: torch.Tensor) -> int:
    if not isinstance(x_T, torch.Tensor) or x_T.ndim != 4 or tuple(x_T.shape[1:]) != IMAGE_SHAPE \
            or x_T.shape[0] % NUM_CLASSES or x_T.shape[0] == 0 or not x_T.is_floating_point():
        got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
        raise ValueError(f"x_T must be a float tensor [10 * m, 1, 28, 28] (m samples of each digit), got {got}")
    if not torch.isfinite(x_T).all():
        raise ValueError("x_T must be finite")
    return x_T.shape[0] // NUM_CLASSES


def model_schedule(model: torch.nn.Module, schedule: diffusion.Schedule | None) -> diffusion.Schedule:
    """``schedule``, checked against the model's ``T``; by default the MNIST recipe's
    (linear, with the model's ``T``, else 1000)."""
    T = getattr(model, "T", None)
    if schedule is None:
        return diffusion.make_schedule("linear", T or 1000)
    if not isinstance(schedule, diffusion.Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    if T is not None and schedule.T != T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={T}")
    return schedule


def cfg_grid(model: torch.nn.Module, w: float, x_T: torch.Tensor, steps: int = 20, *,
             schedule: diffusion.Schedule | None = None, eta: float = 0.0) -> torch.Tensor:
    """Classifier-free guided digits ``[10 * m, 1, 28, 28]`` in ``[-1, 1]`` from noise ``x_T``.

    Sample ``i`` is digit ``i % 10`` (:func:`grid_labels`), drawn with
    ``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6)
    by DDIM over ``steps`` steps (``eta = 0``: deterministic, so the same ``x_T``
    at two weights shows what the weight alone changes). Clipped to ``[-1, 1]``.

    Args:
        x_T: ``[10 * m, 1, 28, 28]`` float starting noise (``m`` samples of each digit)."""
    m = _grid_size(x_T)
    schedule = model_schedule(model, schedule)
    eps_fn = guidance.model_cfg_eps_fn(model, grid_labels(m), w, NUM_CLASSES)
    x0 = diffusion.sample(eps_fn, tuple(x_T.shape), schedule, steps=steps, eta=eta, x_T=x_T)
    return x0.clamp(-1.0, 1.0)


def classifier_grid(model: torch.nn.Module, classifier: torch.nn.Module, gamma: float, x_T: torch.Tensor,
                    steps: int = 20, *, schedule: diffusion.Schedule | None = None,
                    eta: float = 0.0) -> torch.Tensor:
    """Classifier-guided digits ``[10 * m, 1, 28, 28]`` in ``[-1, 1]`` from noise ``x_T``.

    The unconditional prediction ``eps(x_t, null)`` of ``model`` steered by the
    noise-aware ``classifier``: ``eps_hat = eps(x_t) - gamma sigma_t grad log p_phi(y | x_t)``
    (Dhariwal & Nichol 2021, Algorithm 2 in eps form). ``gamma = 0`` is unconditional,
    ``gamma = 1`` the Bayes conditional. Sample ``i`` is digit ``i % 10``.

    Args:
        x_T: ``[10 * m, 1, 28, 28]`` float starting noise (``m`` samples of each digit)."""
    m = _grid_size(x_T)
    schedule = model_schedule(model, schedule)
    uncond = guidance.model_eps_fn(model, NUM_CLASSES, NUM_CLASSES)
    eps_fn = guidance.classifier_guidance(uncond, guidance.classifier_log_prob_fn(classifier), grid_labels(m),
                                          gamma, schedule)
    x0 = diffusion.sample(eps_fn, tuple(x_T.shape), schedule, steps=steps, eta=eta, x_T=x_T)
    return x0.clamp(-1.0, 1.0)
