"""The training loops of the course: one for every denoiser, one for noise-aware classifiers,
one for clean image classifiers, and the seeded initialiser every recipe uses.

``train_diffusion`` minimises the DDPM loss ``|| eps - eps_theta(x_t, t, y) ||^2``
(Ho et al. 2020, Algorithm 1) with label dropout: each label is replaced by the
null label with probability ``p_uncond`` (Ho & Salimans 2021, Algorithm 1), so
one network learns both ``eps(x_t, y)`` and ``eps(x_t, null)``.
``train_classifier`` fits ``p_phi(y | x_t, t)`` on noised data (Dhariwal & Nichol 2021);
``train_image_classifier`` fits ``model(x) -> logits`` on clean images with random
shifts (the MNIST judge). The recipes that call them, with the settings of the
shipped weights, are in :mod:`course_lib.recipes`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import validate
from .diffusion import Schedule, q_sample
from .guidance import drop_labels


@dataclass
class TrainHistory:
    """Per-step losses (and accuracies for classifiers) and the wall-clock time."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check_common(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor | None, schedule: Schedule | None,
                  steps: int, batch_size: int, lr: float) -> None:
    if schedule is not None and getattr(model, "T", schedule.T) != schedule.T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={model.T}")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError("x0 must be a tensor [N, ...] with N >= 1")
    if y is not None and (not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x0.shape[0],)):
        raise ValueError(f"y must be a long tensor of shape [{x0.shape[0]}] (one label per example)")
    validate.integer(steps, "steps", minimum=1)
    validate.integer(batch_size, "batch_size", minimum=1)
    validate.number(lr, "lr", above=0)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (the CPU since
    torch 2.4; faster per step for small nets), else the foreach one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def cosine_lr(optimizer: torch.optim.Optimizer, steps: int, *, decay: bool = True,
               warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of the learning rate to 10% of its start over ``steps`` (``decay=False``:
    constant), after a linear warm-up from ``lr / warmup_steps`` over ``warmup_steps``."""

    def factor(i: int) -> float:
        warm = min(1.0, (i + 1) / warmup_steps) if warmup_steps else 1.0
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0))) if decay else 1.0
        return warm * cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _step(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
          loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``, then one learning-rate step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def _batch(x0: torch.Tensor, y: torch.Tensor | None, batch_size: int, T: int, generator: torch.Generator,
           device: torch.device):
    """A random minibatch ``(x0, y, t, noise)``; randomness from ``generator`` on the CPU."""
    idx = torch.randint(x0.shape[0], (batch_size,), generator=generator)
    t = torch.randint(T, (batch_size,), generator=generator)
    noise = torch.randn((batch_size, *x0.shape[1:]), generator=generator, dtype=x0.dtype)
    labels = None if y is None else y[idx].to(device)
    return x0[idx].to(device), labels, t.to(device), noise.to(device)


def train_diffusion(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor | None, schedule: Schedule, *,
                    steps: int = 4000, batch_size: int = 256, lr: float = 2e-3, p_uncond: float = 0.15,
                    ema_decay: float | None = None, generator: torch.Generator | None = None,
                    progress: bool = True, desc: str = "training", paired_dropout: bool = False,
                    lr_decay: bool = True, warmup_steps: int = 0) -> TrainHistory:
    """Train ``model(x_t, t, y) -> eps`` in place with the DDPM loss and label dropout.

    ``y=None`` trains an unconditional model (every label is the null label
    ``model.num_classes``). With ``ema_decay`` the model ends holding the
    exponential moving average of its weights (Ho et al. 2020, section 4), the
    decay warmed up as ``min(ema_decay, (1 + step) / (10 + step))`` so that short
    runs forget the random initial weights. Returns the loss history.

    ``paired_dropout=True`` keeps the same share ``p_uncond`` of null labels per
    batch, but the dropped examples are copies of conditional ones with the same
    ``x0``, ``t`` and noise (common random numbers). The expected loss is the same;
    the network sees ``eps(x_t, y)`` and ``eps(x_t, null)`` on matched inputs, so the
    noise in their difference, the part CFG multiplies by ``w``, is much smaller.

    The learning rate decays along a cosine to 10% of ``lr`` (``lr_decay=False``: it
    stays at ``lr``), after a linear warm-up over ``warmup_steps``. The MNIST U-Net
    uses warm-up and no decay (:class:`course_lib.recipes.DigitsRecipe`): with decay its
    loss ends lower but its samples follow the label less, which CFG then has to make up.

    Args:
        x0: ``[N, ...]`` training data: points ``[N, 2]`` or digits ``[N, 1, 28, 28]`` in ``[-1, 1]``.
        y: ``None`` or a long tensor ``[N]`` of labels in ``0..K-1`` (``K = model.num_classes``)."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    validate.integer(warmup_steps, "warmup_steps", minimum=0)
    p_uncond = validate.number(p_uncond, "p_uncond", minimum=0, maximum=1)
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {ema_decay!r}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    null = model.num_classes
    n_null = round(p_uncond * batch_size) if paired_dropout and y is not None else 0
    paired = 0 < n_null < batch_size
    ema = copy.deepcopy(model).requires_grad_(False) if ema_decay else None
    params, ema_params = list(model.parameters()), list(ema.parameters()) if ema is not None else []
    optimizer = adam(params, lr)
    scheduler = cosine_lr(optimizer, steps, decay=lr_decay, warmup_steps=warmup_steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        if paired:  # n_null copies of the first conditional examples, relabelled null
            xb, yb, t, noise = _batch(x0, y, batch_size - n_null, schedule.T, generator, device)
            copies = torch.arange(n_null, device=device) % (batch_size - n_null)
            xb, t, noise = (torch.cat([v, v[copies]]) for v in (xb, t, noise))
            yb = torch.cat([yb, torch.full_like(yb[copies], null)])
        else:
            xb, yb, t, noise = _batch(x0, y, batch_size, schedule.T, generator, device)
            yb = drop_labels(torch.full_like(t, null) if yb is None else yb, p_uncond, null, generator)
        loss = F.mse_loss(model(q_sample(xb, t, noise, schedule), t, yb), noise)
        _step(optimizer, scheduler, loss)
        if ema is not None:
            weight = 1 - min(ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():  # ema += (1 - decay) * (model - ema)
                for e, p in zip(ema_params, params):
                    e.lerp_(p, weight)
        history.losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.4f}")
    if ema is not None:
        model.load_state_dict(ema.state_dict())
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def train_classifier(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, schedule: Schedule, *,
                     noisy: bool = True, steps: int = 3000, batch_size: int = 256, lr: float = 2e-3,
                     generator: torch.Generator | None = None, progress: bool = True,
                     desc: str = "training classifier") -> TrainHistory:
    """Train ``model(x_t, t) -> logits`` with cross-entropy on ``x_t = q_sample(x0, t)``,
    ``t`` uniform (``noisy=True``), or on clean ``x0`` with ``t = 0`` (``noisy=False``,
    the classifier that has never seen noise). Returns losses and batch accuracies.

    Args:
        x0: ``[N, ...]`` training data: points ``[N, 2]`` or digits ``[N, 1, 28, 28]`` in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..K-1``."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    if y is None:
        raise ValueError("y must be given: a classifier needs labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    optimizer = adam(model.parameters(), lr)
    scheduler = cosine_lr(optimizer, steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        xb, yb, t, noise = _batch(x0, y, batch_size, schedule.T, generator, device)
        if noisy:
            xb = q_sample(xb, t, noise, schedule)
        else:
            t = torch.zeros_like(t)
        logits = model(xb, t)
        loss = F.cross_entropy(logits, yb)
        _step(optimizer, scheduler, loss)
        history.losses.append(loss.item())
        history.accuracies.append((logits.argmax(1) == yb).float().mean().item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.3f}")
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels each way, filling with background (-1):
    a classifier trained so should not care where on the canvas a digit sits.

    Args:
        x: ``[B, 1, H, W]`` one-channel images (digits ``[B, 1, 28, 28]``). Returns ``[B, 1, H, W]``."""
    if max_shift == 0:
        return x
    H, W = x.shape[-2:]
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, x.shape[0]), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W))[:, None, None, :]
    return pad[torch.arange(x.shape[0])[:, None, None, None], torch.zeros(1, dtype=torch.long)[:, None, None],
               rows, cols]


def train_image_classifier(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, *, steps: int,
                           batch_size: int, lr: float, max_shift: int = 0, generator: torch.Generator | None = None,
                           progress: bool = True, desc: str = "training classifier") -> TrainHistory:
    """Train ``model(x) -> logits`` (no ``t``: clean images only) with cross-entropy, each batch
    shifted at random by up to ``max_shift`` pixels (:func:`random_shift`); Adam with the
    cosine decay of :func:`cosine_lr`. Returns losses and batch accuracies.

    Args:
        x0: ``[N, 1, H, W]`` clean images (digits ``[N, 1, 28, 28]`` in ``[-1, 1]``).
        y: ``[N]`` long labels in ``0..K-1``."""
    validate.integer(max_shift, "max_shift", minimum=0)
    _check_common(model, x0, y, None, steps, batch_size, lr)
    if y is None:
        raise ValueError("y must be given: a classifier needs labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = cosine_lr(optimizer, steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress):
        idx = torch.randint(x0.shape[0], (batch_size,), generator=generator)
        xb, yb = random_shift(x0[idx], max_shift, generator).to(device), y[idx].to(device)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        _step(optimizer, scheduler, loss)
        history.losses.append(loss.item())
        history.accuracies.append((logits.argmax(1) == yb).float().mean().item())
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a network with initial weights from ``seed``, leaving torch's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
