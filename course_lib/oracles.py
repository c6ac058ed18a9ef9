"""The exact diffusion oracles of a 2-D Gaussian mixture: a perfect denoiser and a perfect noise-aware classifier.

Under a schedule, ``x_t = sqrt(alpha_bar_t) x0 + sigma_t eps`` (Ho et al. 2020, eq. 4), so a
mixture's ``x_t`` is again a mixture, whose score and class posterior are exact
(:meth:`course_lib.toy.GaussianMixture2D.noised_score`, ``.noised_log_posterior``). The oracles turn
steps into noise levels and the score into eps, ``eps = -sigma_t score`` (``score = -eps / sigma_t``,
docs/conventions.md, "Time, noise and the model interface").

The mixture is duck-typed (:class:`NoisedMixture`), so this module does not import
:mod:`course_lib.toy`; toy imports it for ``GaussianMixture2D.eps_fn`` and ``.log_posterior_fn``.
"""

from __future__ import annotations

from typing import Protocol

import torch

from . import validate
from .diffusion import EpsFn, LogProbFn, Schedule


class NoisedMixture(Protocol):
    """What the oracles need of a mixture: its class count and the exact answers of its law noised
    to ``c x0 + s eps`` (given as ``signal_var = c^2``, ``noise_var = s^2``)."""

    @property
    def num_classes(self) -> int: ...

    def noised_score(self, x: torch.Tensor, signal_var: torch.Tensor, noise_var: torch.Tensor,
                     y: torch.Tensor | int | None = None) -> torch.Tensor:
        """The exact score ``grad log p(x [| y])`` ``[B, 2]``.

        Args:
            x: ``[B, 2]``.
            signal_var, noise_var: ``c^2``, ``s^2``, each ``[B]`` float64 (one per sample) or a float.
            y: ``None`` (the marginal), an int or ``[B]`` long."""

    def noised_log_posterior(self, x: torch.Tensor, signal_var: torch.Tensor,
                             noise_var: torch.Tensor) -> torch.Tensor:
        """The exact ``log p(y | x)`` ``[B, C]``.

        Args:
            x: ``[B, 2]``.
            signal_var, noise_var: ``c^2``, ``s^2``, each ``[B]`` float64 (one per sample) or a float."""


def _alpha_bars(x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """``alpha_bar_t`` ``[B]`` float64 on ``x``'s device, after checking ``t`` ``[B]`` long against ``schedule``."""
    schedule.check_t(t, x.shape[0])
    return schedule.alpha_bars.to(x.device)[t]


def eps_fn(mixture: NoisedMixture, schedule: Schedule, y: torch.Tensor | int | None = None) -> EpsFn:
    """The exact denoiser ``eps(x_t, t) = -sigma_t grad log p_t(x_t [| y])`` (``y=None``: the marginal),
    in ``x``'s dtype.

    Args:
        mixture: the data law, e.g. a :class:`course_lib.toy.GaussianMixture2D`.
        schedule: the noise schedule.
        y: ``None``, an int or ``[B]`` long. The eps function takes ``x [B, 2]``, ``t [B]`` long."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = _alpha_bars(x, t, schedule)
        score = mixture.noised_score(x, a, 1 - a, y)
        sigma = schedule.sigmas.to(x.device)[t][:, None]
        return (-sigma * score).to(x.dtype)

    return eps


def log_posterior_fn(mixture: NoisedMixture, schedule: Schedule) -> LogProbFn:
    """The exact noise-aware classifier ``log p(y | x_t)``, ``(x [B, 2], t [B] long) -> [B, C]`` in
    ``x``'s dtype, differentiable in ``x`` (for :func:`course_lib.guidance.classifier_guidance`).

    Args:
        mixture: the data law; schedule: the noise schedule."""

    def log_post(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = _alpha_bars(x, t, schedule)
        return mixture.noised_log_posterior(x, a, 1 - a).to(x.dtype)

    return log_post


class OracleDenoiser(torch.nn.Module):
    """The exact denoiser behind the model interface ``model(x, t, y) -> eps``,
    ``y == num_classes`` (the null label) giving the marginal: a perfect model."""

    def __init__(self, mixture: NoisedMixture, schedule: Schedule) -> None:
        super().__init__()
        self.mixture, self.schedule, self.num_classes, self.T = mixture, schedule, mixture.num_classes, schedule.T

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The exact eps ``[B, 2]`` of ``x [B, 2]`` at steps ``t [B]`` given labels ``y [B]`` (long, ``0..C``)."""
        y = validate.labels(y, x.shape[0], self.num_classes, allow_null=True)
        null = y == self.num_classes
        cond = eps_fn(self.mixture, self.schedule, y.clamp(max=self.num_classes - 1))(x, t)
        return torch.where(null[:, None], eps_fn(self.mixture, self.schedule)(x, t), cond)


class OracleClassifier(torch.nn.Module):
    """The exact noise-aware classifier ``(x, t) -> logits = log p(y | x_t)``: a perfect classifier."""

    def __init__(self, mixture: NoisedMixture, schedule: Schedule) -> None:
        super().__init__()
        self.log_posterior, self.num_classes, self.T = log_posterior_fn(mixture, schedule), mixture.num_classes, \
            schedule.T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``log p(y | x_t)`` ``[B, C]`` of ``x [B, 2]`` at steps ``t [B]`` (long)."""
        return self.log_posterior(x, t)
