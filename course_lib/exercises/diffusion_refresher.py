"""Graded exercises of lesson 00 (the diffusion refresher)."""

from __future__ import annotations

import torch

from .. import diffusion
from .core import Exercise

LESSON = "00_diffusion_refresher"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


def _forward_noise(x0: torch.Tensor, alpha_bar: float, eps: torch.Tensor) -> torch.Tensor:
    """DDPM eq. 4: ``x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps`` (what :func:`diffusion.q_sample` does)."""
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps


def _ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_s: float) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, eq. 12, eta = 0), as :func:`diffusion.ddim_step` with ``eta=0``."""
    x0 = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    return alpha_bar_s**0.5 * x0 + (1 - alpha_bar_s) ** 0.5 * eps


def _points(gen: torch.Generator, n: int = 64, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return 3 * torch.randn(n, 2, generator=gen, dtype=dtype) + 1, torch.randn(n, 2, generator=gen, dtype=dtype)


def _forward_public(gen: torch.Generator) -> list[tuple]:
    x0, eps = _points(gen)
    return [(x0, _LINEAR.alpha_bars[t].item(), eps) for t in (10, 250, 900)]


def _forward_hidden(gen: torch.Generator) -> list[tuple]:
    x0, eps = _points(gen)
    x64, e64 = _points(gen, 16, torch.float64)
    ts = torch.randint(1, 999, (3,), generator=gen).tolist()
    return ([(x0, _LINEAR.alpha_bars[t].item(), eps) for t in (0, 999, *ts)]           # t = 0, t = T - 1, random
            + [(x0[:1], _COSINE.alpha_bars[ts[0]].item(), eps[:1]),                  # batch of one, cosine
               (x64, _COSINE.alpha_bars[ts[1]].item(), e64),                         # float64
               (torch.randn(2, 1, 4, 4, generator=gen), 0.5, torch.randn(2, 1, 4, 4, generator=gen))])  # images


def _ddim_public(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen, 32, torch.float64)
    return [(x, eps, _LINEAR.alpha_bars[t].item(), _LINEAR.alpha_bars[s].item()) for t, s in ((999, 949), (600, 550),
                                                                                            (150, 20))]


def _ddim_hidden(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen, 32, torch.float64)
    t, s = sorted(torch.randint(0, 1000, (2,), generator=gen).tolist(), reverse=True)
    return ([(x, eps, _LINEAR.alpha_bars[a].item(), _LINEAR.alpha_bars[b].item())
             for a, b in ((1, 0), (999, 0), (t, s), (t, t))]                            # last step, one jump, random, none
            + [(x[:1], eps[:1], _COSINE.alpha_bars[t].item(), _COSINE.alpha_bars[s].item()),  # batch of one, cosine
               (x.float(), eps.float(), _LINEAR.alpha_bars[500].item(), _LINEAR.alpha_bars[480].item())])  # float32


EXERCISES = [
    Exercise(name="forward_noise", lesson=LESSON, points=1, public_cases=_forward_public,
             hidden_cases=_forward_hidden, reference=_forward_noise, tolerance=1e-5,
             hint="the data and the noise are each scaled by a standard deviation-like factor; "
                  "reread the forward process section: which quantity is a variance?"),
    Exercise(name="ddim_as_euler", lesson=LESSON, points=1, public_cases=_ddim_public, hidden_cases=_ddim_hidden,
             reference=_ddim_step, tolerance=1e-5,
             hint="step in the rescaled variables of the ODE section (x divided by sqrt(alpha_bar) and the matching "
                  "sigma_bar), not in x and sigma_t; then return to x"),
]
