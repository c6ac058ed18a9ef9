"""Classifier guidance and classifier-free guidance as wrappers around ``eps_fn``.

One convention everywhere (docs/conventions.md, "Guidance weights"):

- classifier guidance, scale ``gamma >= 0``:
  ``grad log p_gamma(x_t | y) = grad log p(x_t) + gamma * grad log p(y | x_t)``,
  in eps form ``eps_hat = eps(x_t) - gamma * sigma_t * grad log p(y | x_t)``
  (Dhariwal & Nichol 2021, Algorithm 2);
- classifier-free guidance, weight ``w >= -1``:
  ``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6),
  which is classifier guidance with the implicit classifier and ``gamma = 1 + w``.
  diffusers calls ``1 + w`` the guidance scale, but its pipelines run CFG only when
  ``guidance_scale > 1``: at or below 1 they use the conditional prediction alone, so no
  diffusers setting gives ``w < 0``, and every ``guidance_scale <= 1`` gives ``w = 0``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import validate
from .diffusion import EpsFn, LogProbFn, Schedule, _per_sample


def w_to_gamma(w: float) -> float:
    """CFG weight ``w`` to the classifier scale it equals: ``gamma = 1 + w``."""
    return 1.0 + validate.number(w, "w", minimum=-1)


def gamma_to_w(gamma: float) -> float:
    """Classifier scale ``gamma`` to the CFG weight: ``w = gamma - 1``."""
    return validate.number(gamma, "gamma", minimum=0) - 1.0


def w_to_guidance_scale(w: float) -> float:
    """CFG weight ``w`` to diffusers' ``guidance_scale = 1 + w`` (the formula; a diffusers pipeline
    applies it only for ``w > 0``: at ``guidance_scale <= 1`` it samples the conditional alone)."""
    return 1.0 + validate.number(w, "w", minimum=-1)


def guidance_scale_to_w(guidance_scale: float) -> float:
    """diffusers' ``guidance_scale`` to the CFG weight ``w = guidance_scale - 1`` (the formula; a diffusers
    pipeline given ``guidance_scale <= 1`` samples the conditional alone, i.e. ``w = 0``)."""
    return validate.number(guidance_scale, "guidance_scale", minimum=0) - 1.0


def cfg(eps_cond_fn: EpsFn, eps_uncond_fn: EpsFn, w: float) -> EpsFn:
    """``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6).

    ``w = -1`` is unconditional, ``w = 0`` conditional, ``w > 0`` extrapolates.

    Args:
        eps_cond_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``, label ``y`` built in.
        eps_uncond_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``, the null label built in.
        w: the guidance weight, a finite float >= -1."""
    w = validate.number(w, "w", minimum=-1)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if w == 0.0:
            return eps_cond_fn(x, t)
        if w == -1.0:
            return eps_uncond_fn(x, t)
        return (1 + w) * eps_cond_fn(x, t) - w * eps_uncond_fn(x, t)

    return eps_fn


def model_eps_fn(model: torch.nn.Module, y: torch.Tensor | int, num_classes: int) -> EpsFn:
    """``eps_fn`` of a conditional model ``model(x, t, y)`` for fixed labels ``y``
    (``y = num_classes`` is the null label, i.e. the unconditional prediction).

    Args:
        model: ``model(x [B, ...], t [B], y [B]) -> eps [B, ...]``, ``t`` and ``y`` long.
        y: an int or a long tensor ``[B]`` in ``0..K``, ``K = num_classes`` the null label."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = validate.labels(y, x.shape[0], num_classes, allow_null=True).to(x.device)
        return model(x, t, labels)

    return eps_fn


def model_cfg_eps_fn(model: torch.nn.Module, y: torch.Tensor | int, w: float, num_classes: int) -> EpsFn:
    """CFG with one conditional model, the conditional and unconditional
    predictions computed in a single batched forward pass. Same result as
    ``cfg(model_eps_fn(model, y, K), model_eps_fn(model, K, K), w)``.

    Args:
        model: ``model(x [B, ...], t [B], y [B]) -> eps [B, ...]``, ``t`` and ``y`` long.
        y: an int or a long tensor ``[B]`` in ``0..K-1``; ``w``: a finite float >= -1."""
    w = validate.number(w, "w", minimum=-1)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = validate.labels(y, x.shape[0], num_classes).to(x.device)
        null = torch.full_like(labels, num_classes)
        eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
        return (1 + w) * eps_c - w * eps_u

    return eps_fn


def classifier_log_prob_grad(log_prob_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor,
                             y: torch.Tensor | int) -> torch.Tensor:
    """``grad_x log p(y | x_t)`` by autograd, ``log_prob_fn(x, t) -> [B, K]``.

    Args:
        log_prob_fn: ``(x [B, ...], t [B] long) -> [B, K]`` log-probabilities.
        x: ``[B, ...]``. Returns ``[B, ...]``.
        t: ``[B]`` long in ``0..T-1``.
        y: an int or a long tensor ``[B]`` of labels in ``0..K-1``."""
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        log_probs = log_prob_fn(x_in, t)
        if log_probs.ndim != 2 or log_probs.shape[0] != x.shape[0]:
            raise ValueError(f"log_prob_fn must return [B, K] log-probabilities, got {tuple(log_probs.shape)}")
        labels = validate.labels(y, x.shape[0], log_probs.shape[1]).to(x.device)
        chosen = log_probs.gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, x_in)
    return grad.to(x.dtype)


def classifier_guidance(eps_fn: EpsFn, log_prob_fn: LogProbFn, y: torch.Tensor | int, gamma: float,
                        schedule: Schedule) -> EpsFn:
    """``eps_hat = eps(x_t) - gamma * sigma_t * grad_x log p(y | x_t)``
    (Dhariwal & Nichol 2021, Algorithm 2 in eps form; docs/conventions.md, "Guidance weights").

    ``log_prob_fn(x, t) -> [B, K]`` gives ``log p(y | x_t)``; ``gamma = 0`` is
    unconditional, ``gamma = 1`` the Bayes conditional, ``gamma > 1`` sharpens.

    Args:
        eps_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``, unconditional.
        log_prob_fn: ``(x [B, ...], t [B] long) -> [B, K]`` log-probabilities.
        y: an int or a long tensor ``[B]`` in ``0..K-1``; gamma: a finite float >= 0."""
    gamma = validate.number(gamma, "gamma", minimum=0)
    if isinstance(y, torch.Tensor) and (y.dtype != torch.long or y.ndim != 1):
        raise ValueError("y must be an int or a 1-D long tensor of labels")

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        schedule.check_t(t, x.shape[0])
        grad = classifier_log_prob_grad(log_prob_fn, x, t, y)
        return eps_fn(x, t) - gamma * _per_sample(schedule.sigmas, t, x) * grad

    return guided


def classifier_log_prob_fn(classifier: torch.nn.Module) -> LogProbFn:
    """``(x, t) -> log p_phi(y | x_t) [B, K]`` of a classifier ``classifier(x, t) -> logits [B, K]``:
    the adapter that :func:`classifier_guidance` and the classifier metrics take.

    Args:
        classifier: ``classifier(x [B, ...], t [B] long) -> logits [B, K]``."""
    return lambda x, t: torch.log_softmax(classifier(x, t), dim=1)


def drop_labels(y: torch.Tensor, p_uncond: float, null_label: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label of ``y [B]`` by ``null_label`` with probability ``p_uncond``
    (label dropout, Ho & Salimans 2021, Algorithm 1), one uniform draw per label
    from ``generator``, as :func:`course_lib.training.train_diffusion` does.

    Args:
        y: ``[B]`` long in ``0..K``, ``K = null_label``; p_uncond: a number in ``[0, 1]``.
        generator: the source of the ``B`` uniform draws. Returns ``[B]`` long."""
    p_uncond = validate.number(p_uncond, "p_uncond", minimum=0, maximum=1)
    validate.integer(null_label, "null_label", minimum=1, hint=" (the number of classes K)")
    if not isinstance(y, torch.Tensor) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D long tensor of labels in 0..{null_label}")
    y = validate.labels(y, y.shape[0], null_label, allow_null=True)
    drop = torch.rand(y.shape[0], generator=generator) < p_uncond
    return torch.where(drop.to(y.device), torch.full_like(y, null_label), y)


@torch.no_grad()
def implicit_classifier_grad(eps_cond_fn: EpsFn, eps_uncond_fn: EpsFn, x: torch.Tensor, t: torch.Tensor,
                             schedule: Schedule) -> torch.Tensor:
    """The implicit classifier's gradient ``(eps(x_t, null) - eps(x_t, y)) / sigma_t`` ``[B, ...]``,
    an estimate of ``grad_x log p(y | x_t)`` (Ho & Salimans 2021, sec. 3.2; CFG is classifier
    guidance with it and ``gamma = 1 + w``); ``eps_cond_fn`` holds the label ``y``.

    Args:
        eps_cond_fn, eps_uncond_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``.
        x: ``[B, ...]``.
        t: ``[B]`` long in ``0..T-1``."""
    schedule.check_t(t, x.shape[0])
    return (eps_uncond_fn(x, t) - eps_cond_fn(x, t)) / _per_sample(schedule.sigmas, t, x)


# --- guidance since 2022 (lesson 05) ----------------------------------------------------------


def _check_time(value: float, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number (a time step; +-inf allowed), got {value!r}")
    return float(value)


def interval(guided_fn: EpsFn, plain_fn: EpsFn, t_lo: float, t_hi: float) -> EpsFn:
    """Guidance in a limited interval (Kynkaanniemi et al. 2024, eq. 4 in discrete time):
    ``guided_fn(x, t)`` where ``t_lo <= t <= t_hi`` and ``plain_fn(x, t)`` elsewhere, per sample.

    Typically ``guided_fn = cfg(cond, uncond, w)`` and ``plain_fn = cond`` (CFG at ``w = 0``).
    ``t_lo > t_hi`` is an empty window (``plain_fn`` everywhere); ``(0, T - 1)`` the whole range.

    Args:
        guided_fn, plain_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``.
        t_lo, t_hi: steps (numbers, ``+-inf`` allowed), both ends inside."""
    if not callable(guided_fn) or not callable(plain_fn):
        raise ValueError("guided_fn and plain_fn must be eps functions (x, t) -> eps")
    t_lo, t_hi = _check_time(t_lo, "t_lo"), _check_time(t_hi, "t_hi")

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inside = (t >= t_lo) & (t <= t_hi)                                  # [B]
        if bool(inside.all()):
            return guided_fn(x, t)
        if not bool(inside.any()):
            return plain_fn(x, t)
        mask = inside.reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(mask, guided_fn(x, t), plain_fn(x, t))

    return eps_fn


def autoguidance(good_fn: EpsFn, bad_fn: EpsFn, w: float) -> EpsFn:
    """Autoguidance (Karras et al. 2024, eq. 2 with their ``w = 1 + w``):
    ``eps = (1 + w) eps_good(x_t, y) - w eps_bad(x_t, y)``, the bad model a weaker
    version of the same *conditional* model. ``w = 0`` is the good model alone;
    ``autoguidance(f, f, w)`` is ``f`` for every ``w``.

    Args:
        good_fn, bad_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``; w: a finite float >= -1."""
    if not callable(good_fn) or not callable(bad_fn):
        raise ValueError("good_fn and bad_fn must be eps functions (x, t) -> eps")
    w = validate.number(w, "w", minimum=-1)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if w == 0.0:
            return good_fn(x, t)
        return (1 + w) * good_fn(x, t) - w * bad_fn(x, t)

    return eps_fn


def compose(uncond_fn: EpsFn, terms: list[tuple[EpsFn, float]]) -> EpsFn:
    """Composable diffusion (Liu et al. 2022, eq. 10): ``eps = eps_u + sum_i gamma_i (eps_i - eps_u)``.

    ``terms`` is a list of ``(eps_fn, gamma)``; a negative gamma negates a concept (NOT).
    One term ``[(cond_fn, 1 + w)]`` is exactly ``cfg(cond_fn, uncond_fn, w)`` (``gamma = 1 + w``,
    docs/conventions.md, "Guidance weights"); no terms is ``uncond_fn``.
    At ``t = 0`` the combined score is that of ``p_u^(1 - sum gamma_i) prod_i p_i^(gamma_i)`` (up to
    normalisation); at ``t > 0`` it is not that density's noised score (Du et al. 2023).

    Args:
        uncond_fn: an eps function ``(x [B, ...], t [B] long) -> [B, ...]``.
        terms: ``[(eps_fn, gamma), ...]``, eps functions as above, finite float gammas."""
    if not callable(uncond_fn):
        raise ValueError("uncond_fn must be an eps function (x, t) -> eps")
    if not isinstance(terms, (list, tuple)):
        raise ValueError(f"terms must be a list of (eps_fn, gamma) pairs, got {type(terms).__name__}")
    checked = []
    for i, term in enumerate(terms):
        if not isinstance(term, (list, tuple)) or len(term) != 2 or not callable(term[0]):
            raise ValueError(f"terms[{i}] must be a pair (eps_fn, gamma), got {term!r}")
        checked.append((term[0], validate.number(term[1], f"terms[{i}] gamma")))

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_u = uncond_fn(x, t)
        out = eps_u
        for fn, gamma in checked:
            out = out + gamma * (fn(x, t) - eps_u)
        return out

    return eps_fn


# --- guidance in practice (lesson 06) ---------------------------------------------------------


def _x0_hat(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """``x0_hat = (x_t - sigma_t eps) / sqrt(alpha_bar_t)`` (DDPM eq. 15), per sample."""
    return (x - _per_sample(schedule.sigmas, t, x) * eps) / _per_sample(schedule.alpha_bars, t, x).sqrt()


def rescaled(guided_fn: EpsFn, cond_fn: EpsFn, phi: float) -> EpsFn:
    """CFG-rescale (Lin et al. 2024, sec. 3.4; diffusers' ``rescale_noise_cfg``, the pipelines'
    ``guidance_rescale``): per sample, the guided prediction scaled to the standard deviation of
    the conditional one (over every non-batch dimension), mixed with the unscaled one by ``phi``:

        eps_rescaled = eps_g * std(eps_c) / std(eps_g),    eps = phi eps_rescaled + (1 - phi) eps_g.

    ``phi = 0`` is ``guided_fn`` alone; Lin et al. use ``phi = 0.7``. Typically
    ``guided_fn = cfg(cond_fn, uncond_fn, w)``."""
    if not callable(guided_fn) or not callable(cond_fn):
        raise ValueError("guided_fn and cond_fn must be eps functions (x, t) -> eps")
    phi = validate.number(phi, "phi", minimum=0, maximum=1)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_g = guided_fn(x, t)
        if phi == 0.0:
            return eps_g
        dims = list(range(1, eps_g.ndim))
        std_c, std_g = cond_fn(x, t).std(dim=dims, keepdim=True), eps_g.std(dim=dims, keepdim=True)
        ratio = torch.where(std_g > 0, std_c / std_g.clamp(min=torch.finfo(std_g.dtype).tiny), torch.ones_like(std_g))
        return phi * (eps_g * ratio) + (1 - phi) * eps_g

    return eps_fn


def threshold_x0(x0: torch.Tensor, percentile: float = 0.995, max_value: float = 1.0) -> torch.Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022, sec. 2.3) as diffusers'
    ``DDIMScheduler._threshold_sample``: per sample, ``s`` = the ``percentile`` quantile of
    ``|x0|`` over every non-batch entry, clamped to ``[1, max_value]``; ``x0`` clipped to
    ``[-s, s]`` and divided by ``s``. ``max_value = 1`` is static clipping to ``[-1, 1]``.

    Args:
        x0: ``[B, ...]`` float denoised guesses. Returns ``[B, ...]``."""
    percentile = validate.number(percentile, "percentile", above=0, maximum=1)
    max_value = validate.number(max_value, "max_value", minimum=1)
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or not x0.is_floating_point():
        raise ValueError("x0 must be a float tensor [B, ...]")
    flat = x0.reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs(), percentile, dim=1).clamp(1.0, max_value)[:, None]
    return (torch.maximum(torch.minimum(flat, s), -s) / s).reshape(x0.shape)


def thresholded(eps_fn: EpsFn, schedule: Schedule, percentile: float = 0.995, max_value: float = 1.0) -> EpsFn:
    """The eps whose implied ``x0_hat`` is :func:`threshold_x0` of the wrapped model's ``x0_hat``,
    converted back to eps at the same ``t``: ``eps' = (x_t - sqrt(alpha_bar_t) x0_thr) / sigma_t``.
    A DDIM step with ``eps'`` is diffusers' ``DDIMScheduler(thresholding=True,
    dynamic_thresholding_ratio=percentile, sample_max_value=max_value)`` step with
    ``use_clipped_model_output=True`` (GLIDE's choice; without it diffusers keeps the unclipped eps
    in the direction term, which an ``eps_fn`` wrapper cannot express). ``max_value``
    bounds how far a saturated ``x0_hat`` is scaled down (Imagen: large; diffusers' default 1)."""
    if not callable(eps_fn):
        raise ValueError("eps_fn must be an eps function (x, t) -> eps")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    percentile = validate.number(percentile, "percentile", above=0, maximum=1)
    max_value = validate.number(max_value, "max_value", minimum=1)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        schedule.check_t(t, x.shape[0])
        x0 = threshold_x0(_x0_hat(x, eps_fn(x, t), t, schedule), percentile, max_value)
        return (x - _per_sample(schedule.alpha_bars, t, x).sqrt() * x0) / _per_sample(schedule.sigmas, t, x)

    return guided


def loss_guidance(eps_fn: EpsFn, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], weight: float,
                  schedule: Schedule) -> EpsFn:
    """Guidance by a loss on the denoised guess (Bansal et al. 2023, "universal guidance", forward
    guidance; Chung et al. 2023, DPS): with ``x0_hat(x_t) = (x_t - sigma_t eps(x_t)) / sqrt(alpha_bar_t)``,

        score_guided = score(x_t) - weight * grad_x loss(x0_hat(x_t)),
        i.e.  eps_guided = eps(x_t) + weight * sigma_t * grad_x loss(x0_hat(x_t)).

    The gradient runs through ``eps_fn`` by autograd. ``loss = -log p_clean(y | x0_hat)``
    turns a classifier of *clean* data into a guide; ``weight = 0`` is ``eps_fn`` itself.

    Args:
        loss_fn: ``(x0_hat [B, ...], t [B] long) -> [B]``, any differentiable per-sample loss
            (lower is better)."""
    if not callable(eps_fn) or not callable(loss_fn):
        raise ValueError("eps_fn and loss_fn must be callables: eps_fn(x, t) -> eps, loss_fn(x0_hat, t) -> [B]")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    weight = validate.number(weight, "weight", minimum=0)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        schedule.check_t(t, x.shape[0])
        if weight == 0.0:
            return eps_fn(x, t)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            eps = eps_fn(x_in, t)
            loss = loss_fn(_x0_hat(x_in, eps, t, schedule), t)
            if not isinstance(loss, torch.Tensor) or loss.shape != (x.shape[0],):
                raise ValueError(f"loss_fn must return one loss per sample [{x.shape[0]}], "
                                 f"got {getattr(loss, 'shape', type(loss).__name__)}")
            (grad,) = torch.autograd.grad(loss.sum(), x_in)
        return (eps.detach() + weight * _per_sample(schedule.sigmas, t, x) * grad).to(x.dtype)

    return guided
