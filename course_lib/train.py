"""One training loop for every denoiser in the course, and one for noise-aware classifiers.

``train_diffusion`` minimises the DDPM loss ``|| eps - eps_theta(x_t, t, y) ||^2``
(Ho et al. 2020, Algorithm 1) with label dropout: each label is replaced by the
null label with probability ``p_uncond`` (Ho & Salimans 2021, Algorithm 1), so
one network learns both ``eps(x_t, y)`` and ``eps(x_t, null)``.
``train_classifier`` fits ``p_phi(y | x_t, t)`` on noised data (Dhariwal & Nichol 2021).

Run ``python -m course_lib.train --help`` to rebuild the shipped weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .diffusion import Schedule, q_sample


@dataclass
class TrainHistory:
    """Per-step losses (and accuracies for classifiers) and the wall-clock time."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check_common(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor | None, schedule: Schedule,
                  steps: int, batch_size: int, lr: float) -> None:
    if getattr(model, "T", schedule.T) != schedule.T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={model.T}")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError("x0 must be a tensor [N, ...] with N >= 1")
    if y is not None and (not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x0.shape[0],)):
        raise ValueError(f"y must be a long tensor of shape [{x0.shape[0]}] (one label per example)")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _cosine_lr(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of the learning rate to 10% of its start over ``steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0))))


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
                    progress: bool = True, desc: str = "training") -> TrainHistory:
    """Train ``model(x_t, t, y) -> eps`` in place with the DDPM loss and label dropout.

    ``y=None`` trains an unconditional model (every label is the null label
    ``model.num_classes``). With ``ema_decay`` the model ends holding the
    exponential moving average of its weights (Ho et al. 2020, section 4).
    Returns the loss history."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    if not (isinstance(p_uncond, (int, float)) and 0 <= p_uncond <= 1):
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {ema_decay!r}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    null = model.num_classes
    ema = copy.deepcopy(model).requires_grad_(False) if ema_decay else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _cosine_lr(optimizer, steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        xb, yb, t, noise = _batch(x0, y, batch_size, schedule.T, generator, device)
        drop = torch.rand(batch_size, generator=generator).to(device) < p_uncond
        yb = torch.full_like(t, null) if yb is None else torch.where(drop, torch.full_like(yb, null), yb)
        loss = F.mse_loss(model(q_sample(xb, t, noise, schedule), t, yb), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1 - ema_decay)
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
    the classifier that has never seen noise). Returns losses and batch accuracies."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    if y is None:
        raise ValueError("y must be given: a classifier needs labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _cosine_lr(optimizer, steps)
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
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        history.losses.append(loss.item())
        history.accuracies.append((logits.argmax(1) == yb).float().mean().item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.3f}")
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
