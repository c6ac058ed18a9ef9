"""Langevin corrector steps between the sampler's steps (predictor-corrector sampling).

At a noise level ``t`` the noised law ``p_t`` is the stationary law of the Langevin dynamics

    x <- x + e s(x) + sqrt(2 e) z,     s = grad log p_t = -eps(x, t) / sigma_t,   z ~ N(0, I),

so a few such steps after each predictor step pull the samples back towards ``p_t`` (Song et al.
2021, *Score-based generative modeling through SDEs*, Algorithm 5). The step size ``e`` follows
their signal-to-noise rule

    e = 2 (r ||z|| / ||s||)^2                                                  (Algorithm 5, alpha = 1)

with the norms averaged over the batch: then the drift ``e s`` is ``r`` times as long as the noise
``sqrt(2 e) z``, and because ``||s|| ~ sqrt(d) / sigma_t`` the step shrinks like ``sigma_t^2``. The
corrector may use another score than the predictor: with the exact noised score of a target and
enough steps per level it samples that target, whatever the predictor did (for CFG, Bradley & Nakkiran
2024 read ancestral CFG itself as such a predictor-corrector).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import validate
from .diffusion import EpsFn, Schedule, _sample_loop

NoisedScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


def snr_step_size(score: torch.Tensor, noise: torch.Tensor, snr: float) -> float:
    """``e = 2 (r mean||z|| / mean||s||)^2`` (Song et al. 2021, Algorithm 5), norms per sample over
    all but the batch dimension, averaged over the batch; ``score`` and ``noise`` ``[B, ...]``.

    Args:
        score: ``[B, ...]``.
        noise: ``[B, ...]``, the shape of ``score``.
        snr: ``r``, a finite float > 0.
    """
    snr = validate.number(snr, "snr", above=0)
    if not isinstance(score, torch.Tensor) or not isinstance(noise, torch.Tensor) or score.shape != noise.shape:
        raise ValueError("score and noise must be tensors of one shape [B, ...]")
    score_norm = score.reshape(score.shape[0], -1).norm(dim=1).mean()
    noise_norm = noise.reshape(noise.shape[0], -1).norm(dim=1).mean()
    if not torch.isfinite(score_norm) or score_norm == 0:
        raise ValueError("score must be finite and not all zero")
    return float(2 * (snr * noise_norm / score_norm) ** 2)


def langevin_step(x: torch.Tensor, score: torch.Tensor, snr: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One corrector step ``x + e s + sqrt(2 e) z`` with ``e`` from :func:`snr_step_size`.

    Args:
        x: ``[B, ...]``.
        score: ``[B, ...]`` ``grad log p_t(x)``.
        snr: ``r``, a finite float > 0.
        generator: the source of ``z``.
        Returns ``[B, ...]``.
    """
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    step = snr_step_size(score, z, snr)
    return x + step * score.to(x.dtype) + math.sqrt(2 * step) * z


def eps_fn_from_noised_score(noised_score: NoisedScoreFn, schedule: Schedule) -> EpsFn:
    """``eps(x, t) = -sigma_t noised_score(x, alpha_bar_t)`` for a score given per noise level, such as
    :meth:`course_lib.tilted.TiltedDensity.noised_score`; a batch must share one ``t``.

    Args:
        noised_score: ``(x [B, ...], alpha_bar: float) -> [B, ...]``.
        schedule: the noise schedule.
        Returns an eps function ``(x [B, ...], t [B] long) -> [B, ...]``.
    """

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        schedule.check_t(t, x.shape[0])
        if t.numel() and not bool((t == t[0]).all()):
            raise ValueError("t must hold one time step for the whole batch")
        step = int(t[0])
        return (-float(schedule.sigmas[step]) * noised_score(x, float(schedule.alpha_bars[step]))).to(x.dtype)

    return eps_fn


@torch.no_grad()
def sample_pc(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, *, steps: int,
              corrector_steps: int = 1, snr: float = 0.16, corrector_eps_fn: EpsFn | None = None,
              corrector_min_t: int = 0, eta: float = 1.0, generator: torch.Generator | None = None,
              x_T: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None, progress: bool = False) -> torch.Tensor:
    """Predictor-corrector sampling: at each of ``steps`` DDIM levels ``t`` (from ``T - 1`` down),
    ``corrector_steps`` Langevin steps with the score ``-corrector_eps_fn(x, t) / sigma_t``
    (default ``eps_fn``; only at ``t >= corrector_min_t``), then one DDIM step (``eta``) with
    ``eps_fn``: :func:`course_lib.diffusion.sample`'s loop with this corrector before each step, so
    ``corrector_steps = 0`` is ``sample(..., steps=steps)``. Returns ``x0 [shape]``.

    Args:
        eps_fn: an eps function ``(x [B, ...], t [B] long) -> eps [B, ...]`` (the predictor).
        shape: ``(B, ...)``.
        schedule: the noise schedule.
        steps: an int in ``1..T``.
        corrector_steps: an int >= 0.
        snr: ``r``, a finite float > 0.
        corrector_eps_fn: an eps function for the corrector's score, or ``None`` (``eps_fn``).
        corrector_min_t: the lowest step that is corrected.
        eta: the DDIM stochasticity, a float >= 0.
        generator: the source of ``x_T`` and all noise.
        x_T: ``[*shape]`` or ``None``.
        dtype, device: of the drawn ``x_T``.
        progress: show a progress bar.
    """
    validate.integer(corrector_steps, "corrector_steps", minimum=0)
    validate.integer(corrector_min_t, "corrector_min_t")
    snr = validate.number(snr, "snr", above=0)
    corrector = corrector_eps_fn if corrector_eps_fn is not None else eps_fn

    def correct(x: torch.Tensor, t: int) -> torch.Tensor:
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        sigma = float(schedule.sigmas[t])
        for _ in range(corrector_steps if t >= corrector_min_t else 0):
            x = langevin_step(x, -corrector(x, t_batch).to(x.dtype) / sigma, snr, generator)
        return x

    return _sample_loop(eps_fn, shape, schedule, steps=steps, eta=eta, generator=generator, return_trajectory=False,
                        x_T=x_T, dtype=dtype, device=device, progress=progress, before_step=correct,
                        desc="sampling (PC)")
