"""Classifier guidance and classifier-free guidance as wrappers around ``eps_fn``.

One convention everywhere (DESIGN.md section 2):

- classifier guidance, scale ``gamma >= 0``:
  ``grad log p_gamma(x_t | y) = grad log p(x_t) + gamma * grad log p(y | x_t)``,
  in eps form ``eps_hat = eps(x_t) - gamma * sigma_t * grad log p(y | x_t)``
  (Dhariwal & Nichol 2021, Algorithm 2);
- classifier-free guidance, weight ``w >= -1``:
  ``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6),
  which is classifier guidance with the implicit classifier and ``gamma = 1 + w``.
  diffusers calls ``1 + w`` the guidance scale.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .diffusion import EpsFn, Schedule, _per_sample

LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_weight(value: float, name: str, minimum: float) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return float(value)


def w_to_gamma(w: float) -> float:
    """CFG weight ``w`` to the classifier scale it equals: ``gamma = 1 + w``."""
    return 1.0 + _check_weight(w, "w", -1.0)


def gamma_to_w(gamma: float) -> float:
    """Classifier scale ``gamma`` to the CFG weight: ``w = gamma - 1``."""
    return _check_weight(gamma, "gamma", 0.0) - 1.0


def w_to_guidance_scale(w: float) -> float:
    """CFG weight ``w`` to diffusers' ``guidance_scale = 1 + w``."""
    return 1.0 + _check_weight(w, "w", -1.0)


def guidance_scale_to_w(guidance_scale: float) -> float:
    """diffusers' ``guidance_scale`` to the CFG weight ``w = guidance_scale - 1``."""
    return _check_weight(guidance_scale, "guidance_scale", 0.0) - 1.0


def cfg(eps_cond_fn: EpsFn, eps_uncond_fn: EpsFn, w: float) -> EpsFn:
    """``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6).

    ``w = -1`` is unconditional, ``w = 0`` conditional, ``w > 0`` extrapolates."""
    w = _check_weight(w, "w", -1.0)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if w == 0.0:
            return eps_cond_fn(x, t)
        if w == -1.0:
            return eps_uncond_fn(x, t)
        return (1 + w) * eps_cond_fn(x, t) - w * eps_uncond_fn(x, t)

    return eps_fn


def check_labels(y: torch.Tensor | int, batch: int, num_classes: int, name: str = "y",
                 allow_null: bool = False) -> torch.Tensor:
    """Return ``y`` as a long tensor ``[batch]``; raise ``ValueError`` unless every
    label is in ``0..num_classes-1`` (or ``num_classes``, the null label, if allowed)."""
    top = num_classes if allow_null else num_classes - 1
    if isinstance(y, int) and not isinstance(y, bool):
        y = torch.full((batch,), y, dtype=torch.long)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.ndim != 1:
        raise ValueError(f"{name} must be an int or a 1-D long tensor of labels in 0..{top}")
    if y.shape[0] != batch:
        raise ValueError(f"{name} must have one label per sample ({batch}), got {y.shape[0]}")
    if y.numel() and (y.min() < 0 or y.max() > top):
        raise ValueError(f"{name} must lie in 0..{top}, got values in {int(y.min())}..{int(y.max())}")
    return y


def model_eps_fn(model: torch.nn.Module, y: torch.Tensor | int, num_classes: int) -> EpsFn:
    """``eps_fn`` of a conditional model ``model(x, t, y)`` for fixed labels ``y``
    (``y = num_classes`` is the null label, i.e. the unconditional prediction)."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = check_labels(y, x.shape[0], num_classes, allow_null=True).to(x.device)
        return model(x, t, labels)

    return eps_fn


def model_cfg_eps_fn(model: torch.nn.Module, y: torch.Tensor | int, w: float, num_classes: int) -> EpsFn:
    """CFG with one conditional model, the conditional and unconditional
    predictions computed in a single batched forward pass. Same result as
    ``cfg(model_eps_fn(model, y, K), model_eps_fn(model, K, K), w)``."""
    w = _check_weight(w, "w", -1.0)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = check_labels(y, x.shape[0], num_classes).to(x.device)
        null = torch.full_like(labels, num_classes)
        eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
        return (1 + w) * eps_c - w * eps_u

    return eps_fn


def classifier_log_prob_grad(log_prob_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor,
                             y: torch.Tensor | int) -> torch.Tensor:
    """``grad_x log p(y | x_t)`` by autograd, ``log_prob_fn(x, t) -> [B, K]``."""
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        log_probs = log_prob_fn(x_in, t)
        if log_probs.ndim != 2 or log_probs.shape[0] != x.shape[0]:
            raise ValueError(f"log_prob_fn must return [B, K] log-probabilities, got {tuple(log_probs.shape)}")
        labels = check_labels(y, x.shape[0], log_probs.shape[1]).to(x.device)
        chosen = log_probs.gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, x_in)
    return grad.to(x.dtype)


def classifier_guidance(eps_fn: EpsFn, log_prob_fn: LogProbFn, y: torch.Tensor | int, gamma: float,
                        schedule: Schedule) -> EpsFn:
    """``eps_hat = eps(x_t) - gamma * sigma_t * grad_x log p(y | x_t)``
    (Dhariwal & Nichol 2021, Algorithm 2 in eps form; DESIGN.md section 2).

    ``log_prob_fn(x, t) -> [B, K]`` gives ``log p(y | x_t)``; ``gamma = 0`` is
    unconditional, ``gamma = 1`` the Bayes conditional, ``gamma > 1`` sharpens."""
    gamma = _check_weight(gamma, "gamma", 0.0)
    if isinstance(y, torch.Tensor) and (y.dtype != torch.long or y.ndim != 1):
        raise ValueError("y must be an int or a 1-D long tensor of labels")

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        schedule.check_t(t, x.shape[0])
        grad = classifier_log_prob_grad(log_prob_fn, x, t, y)
        return eps_fn(x, t) - gamma * _per_sample(schedule.sigmas, t, x) * grad

    return guided
