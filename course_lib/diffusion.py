"""Noise schedules, the forward process and the DDPM / DDIM samplers.

Notation (docs/conventions.md, "Time, noise and the model interface"): discrete time ``t`` in ``{0, ..., T-1}``,
``alpha_bar_t`` strictly decreasing, ``sigma_t = sqrt(1 - alpha_bar_t)`` and

    x_t = sqrt(alpha_bar_t) x0 + sigma_t eps,    eps ~ N(0, I).        (DDPM eq. 4)

A denoiser reaches the samplers as ``eps_fn(x [B, ...], t [B] long) -> eps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import validate

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# a classifier as guidance sees it: (x [B, ...], t [B] long) -> log p(y | x_t) [B, K]
LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """A discrete noise schedule: ``betas``, ``alphas = 1 - betas`` and
    ``alpha_bars = cumprod(alphas)``, each a float64 tensor of length ``T``.

    Args:
        betas: ``[T]`` floats strictly between 0 and 1 (stored as float64 on the CPU)."""

    betas: torch.Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.numel() < 1:
            raise ValueError("betas must be a non-empty 1-D tensor")
        if not torch.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
            raise ValueError("betas must all lie strictly between 0 and 1")
        object.__setattr__(self, "betas", b.detach().to(torch.float64).cpu())

    @property
    def T(self) -> int:
        return self.betas.numel()

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, dim=0)

    @property
    def sigmas(self) -> torch.Tensor:
        """``sigma_t = sqrt(1 - alpha_bar_t)``, the noise level of ``x_t``."""
        return torch.sqrt(1.0 - self.alpha_bars)

    def check_t(self, t: torch.Tensor, batch: int | None = None, name: str = "t") -> None:
        """Raise ``ValueError`` unless ``t`` is a long tensor ``[batch]`` in ``0..T-1``.

        Args:
            t: the time steps to check, expected ``[batch]`` long (any length if ``batch`` is None)."""
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.ndim != 1:
            raise ValueError(f"{name} must be a 1-D long tensor of time steps")
        if batch is not None and t.shape[0] != batch:
            raise ValueError(f"{name} must have one entry per sample ({batch}), got {t.shape[0]}")
        if t.numel() and (t.min() < 0 or t.max() >= self.T):
            raise ValueError(f"{name} must lie in 0..{self.T - 1} for this schedule (T={self.T})")


def make_schedule(kind: str = "linear", T: int = 1000) -> Schedule:
    """Linear betas (Ho et al. 2020, 1e-4 to 0.02 at T=1000, rescaled by 1000/T)
    or the cosine schedule (Nichol & Dhariwal 2021, eq. 17, s=0.008, beta <= 0.999).

    Args:
        kind: ``"linear"`` or ``"cosine"``.
        T: the number of steps, an int >= 2; the schedule's tensors have shape ``[T]``.
    """
    validate.integer(T, "T", minimum=2)
    if kind == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(1e-4 * scale, min(0.02 * scale, 0.999), T, dtype=torch.float64)
    elif kind == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
    return Schedule(betas)


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather ``values[t]`` and shape it ``[B, 1, ...]`` to broadcast against ``like``."""
    v = values.to(like.device)[t].to(like.dtype)
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Forward process ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise`` (DDPM eq. 4).

    Args:
        x0: ``[B, ...]`` clean data.
        t: ``[B]`` long, each sample's step in ``0..T-1``.
        noise: ``[B, ...]`` the ``eps`` to add, the shape of ``x0``.
        schedule: the noise schedule.

    Returns ``x_t`` ``[B, ...]``."""
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    schedule.check_t(t, x0.shape[0])
    a = _per_sample(schedule.alpha_bars, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _check_eps(eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if eps.shape != x.shape:
        raise ValueError(f"eps_fn must return the shape of x {tuple(x.shape)}, got {tuple(eps.shape)}")
    return eps.to(x.dtype)


def ddpm_step(x: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """One ancestral step ``x_t -> x_{t-1}`` (DDPM Algorithm 2) with the posterior
    variance ``beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t`` (eq. 7).

    Args:
        x: ``[B, ...]`` the batch at step ``t``.
        eps: ``[B, ...]`` the predicted noise, the shape of ``x``.
        t: the step, an int in ``0..T-1`` shared by the batch (no noise is added at ``t = 0``).
        schedule: the noise schedule.
        generator: the source of the step's noise.

    Returns ``x_{t-1}`` ``[B, ...]``."""
    beta, alpha, ab = (float(v[t]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    mean = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)
    if t == 0:
        return mean
    ab_prev = float(schedule.alpha_bars[t - 1])
    var = (1 - ab_prev) / (1 - ab) * beta
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return mean + math.sqrt(var) * z


def ddim_step(x: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: Schedule, eta: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM step ``x_t -> x_{t_prev}`` (Song et al. 2021, eq. 12), ``t_prev = -1``
    meaning the clean end (``alpha_bar = 1``). ``eta = 0`` is deterministic;
    ``eta = 1`` over consecutive steps is ancestral DDPM.

    Args:
        x: ``[B, ...]`` the batch at step ``t``.
        eps: ``[B, ...]`` the predicted noise, the shape of ``x``.
        t: the current step, an int in ``0..T-1`` shared by the batch.
        t_prev: the next step, an int below ``t``, or ``-1`` for the clean end.
        schedule: the noise schedule.
        eta: the stochasticity, a float >= 0 (the noise is ``eta`` times eq. 16's sigma).
        generator: the source of the step's noise (unused at ``eta = 0``).

    Returns ``x_{t_prev}`` ``[B, ...]``."""
    ab = float(schedule.alpha_bars[t])
    ab_prev = float(schedule.alpha_bars[t_prev]) if t_prev >= 0 else 1.0
    x0_hat = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    x_prev = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x_prev


def ddim_timesteps(steps: int, T: int) -> list[int]:
    """``steps`` evenly spaced, distinct time steps from ``T-1`` down to ``0``.

    Args:
        steps: how many, an int in ``1..T``.
        T: the schedule's number of steps.

    Returns a list of ``steps`` ints, decreasing."""
    validate.integer(steps, "steps", minimum=1, maximum=T, hint=" (the schedule's T)")
    ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long().tolist()
    return ts[::-1]


def _sample_loop(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, *, steps: int | None, eta: float,
                 generator: torch.Generator | None, return_trajectory: bool, x_T: torch.Tensor | None,
                 dtype: torch.dtype, device: torch.device | str | None, progress: bool,
                 before_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None, desc: str = "sampling"):
    """The reverse-process loop of :func:`sample` (its arguments, checks and results), shared with
    :func:`course_lib.langevin.sample_pc`: ``before_step(x [*shape], t) -> x`` (a corrector), when
    given, runs at each level ``t`` before that level's predictor step. ``desc`` labels the progress bar."""
    shape = tuple(shape)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be a tuple of positive integers, got {shape!r}")
    eta = validate.number(eta, "eta", minimum=0)
    validate.flag(return_trajectory, "return_trajectory")
    validate.flag(progress, "progress")
    ddpm = steps is None and eta == 1.0
    ts = ddim_timesteps(schedule.T if steps is None else steps, schedule.T)
    if x_T is None:
        x = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    elif tuple(x_T.shape) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
    else:
        x = x_T.clone()
    trajectory = [x] if return_trajectory else None
    for i, t in enumerate(tqdm(ts, desc=desc, leave=False, disable=not progress)):
        if before_step is not None:
            x = before_step(x, t)
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=x.device)
        eps = _check_eps(eps_fn(x, t_batch), x)
        if ddpm:
            x = ddpm_step(x, eps, t, schedule, generator)
        else:
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddim_step(x, eps, t, t_prev, schedule, eta, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is not None:
        return x, torch.stack(trajectory)
    return x


@torch.no_grad()
def sample(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, *, steps: int | None = None,
           eta: float = 1.0, generator: torch.Generator | None = None, return_trajectory: bool = False,
           x_T: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
           device: torch.device | str | None = None, progress: bool = False):
    """Draw ``x0`` samples of ``shape = (B, ...)`` by reversing the forward process.

    ``steps=None``: ancestral DDPM over all ``T`` steps (Algorithm 2; with
    ``eta != 1`` it is DDIM over all ``T`` steps). ``steps=k``: DDIM over ``k``
    evenly spaced steps with stochasticity ``eta`` (0 deterministic, 1 DDPM-like).
    ``x_T`` fixes the starting noise (so several guidance weights can share it);
    otherwise it is drawn from ``generator``. Returns ``x0`` and, when asked, the
    trajectory ``[steps + 1, *shape]`` from ``x_T`` to ``x0``.

    Args:
        eps_fn: the denoiser ``eps_fn(x [B, ...], t [B] long) -> eps [B, ...]``.
        shape: ``(B, ...)``, the shape of the samples.
        schedule: the noise schedule.
        steps: ``None`` (all ``T`` steps) or an int in ``1..T``.
        eta: the stochasticity, a float >= 0.
        generator: the source of ``x_T`` and of every step's noise.
        return_trajectory: also return ``[steps + 1, *shape]`` (``T + 1`` when ``steps`` is ``None``).
        x_T: ``[*shape]`` the starting noise, or ``None``.
        dtype, device: of the drawn ``x_T``.
        progress: show a progress bar.
    """
    return _sample_loop(eps_fn, shape, schedule, steps=steps, eta=eta, generator=generator,
                        return_trajectory=return_trajectory, x_T=x_T, dtype=dtype, device=device, progress=progress)


def score_from_eps(eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """``score(x_t) = grad log p_t(x_t) = -eps / sigma_t`` (docs/conventions.md, "Time, noise and the model interface");
    ``eps`` ``[B, ...]``, ``t`` ``[B]`` long, returns ``[B, ...]``."""
    schedule.check_t(t, eps.shape[0])
    return -eps / _per_sample(schedule.sigmas, t, eps)


def eps_from_score(score: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """``eps = -sigma_t * score``, the inverse of :func:`score_from_eps`; ``score`` ``[B, ...]``, ``t`` ``[B]``
    long, returns ``[B, ...]``."""
    schedule.check_t(t, score.shape[0])
    return -_per_sample(schedule.sigmas, t, score) * score
