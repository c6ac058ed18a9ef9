"""Flow matching's velocity and diffusion's eps are affine in each other, so CFG carries over exactly.

For a Gaussian probability path ``x_tau = a x0 + s eps`` (coefficients ``a(tau), s(tau)``, derivatives
``da, ds``) the flow-matching velocity is ``v = E[da x0 + ds eps | x_tau]`` (Lipman et al. 2023, eq. 20).
With ``x0 = (x - s eps) / a``:

    v = (da / a) x + (ds - da s / a) eps,        eps = -s grad log p_tau(x),

affine in ``eps`` (and in the score) with coefficients that do not depend on the label. CFG's
weights ``(1 + w)`` and ``-w`` sum to one, so ``(1 + w) v(x, y) - w v(x, null)`` is the velocity of
``(1 + w) eps(x, y) - w eps(x, null)``: guidance on the velocity *is* guidance on the score
(Zheng et al. 2023, *Guided flows*). :func:`course_lib.guidance.cfg` never looks at its functions'
second argument, so it combines velocity functions ``v(x, tau)`` as well. The rectified-flow path is
``a = 1 - tau``, ``s = tau``.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import validate
from .toy import GaussianMixture2D

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PathCoefficients = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _check_tau(tau: torch.Tensor, batch: int) -> torch.Tensor:
    """``tau`` ``[batch]`` float in ``(0, 1]``, or ``ValueError``."""
    if not isinstance(tau, torch.Tensor) or tau.ndim != 1 or tau.shape[0] != batch or not tau.is_floating_point():
        raise ValueError(f"tau must be a 1-D float tensor with one entry per sample ({batch})")
    if not torch.isfinite(tau).all() or (tau <= 0).any() or (tau > 1).any():
        raise ValueError(f"tau must lie in (0, 1], got values in {float(tau.min()):g}..{float(tau.max()):g}")
    return tau


def linear_path(tau: torch.Tensor) -> PathCoefficients:
    """The rectified-flow path ``x_tau = (1 - tau) x0 + tau eps``: ``(a, s, da, ds)`` per sample.

    Args:
        tau: ``[B]`` float in ``(0, 1]``.
        Returns ``(a, s, da, ds)``, each ``[B]``.
    """
    if not isinstance(tau, torch.Tensor) or tau.ndim != 1:
        raise ValueError("tau must be a 1-D float tensor")
    _check_tau(tau, tau.shape[0])
    return 1 - tau, tau, -torch.ones_like(tau), torch.ones_like(tau)


def _column(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return c.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def velocity_from_eps(eps: torch.Tensor, x: torch.Tensor, path: PathCoefficients) -> torch.Tensor:
    """``v = (da / a) x + (ds - da s / a) eps`` for ``path = (a, s, da, ds)`` (each ``[B]``, ``a > 0``).

    Args:
        eps: ``[B, ...]``.
        x: ``[B, ...]`` the point ``x_tau``.
        path: ``(a, s, da, ds)``, each ``[B]``.
        Returns ``v`` ``[B, ...]``.
    """
    a, s, da, ds = (_column(c, x) for c in path)
    if eps.shape != x.shape:
        raise ValueError(f"eps must have the shape of x {tuple(x.shape)}, got {tuple(eps.shape)}")
    if (a <= 0).any():
        raise ValueError("path's a must be > 0 (the clean signal must not have vanished)")
    return da / a * x + (ds - da * s / a) * eps


def eps_from_velocity(v: torch.Tensor, x: torch.Tensor, path: PathCoefficients) -> torch.Tensor:
    """The inverse of :func:`velocity_from_eps`: ``eps = (v - (da / a) x) / (ds - da s / a)``.

    Args:
        v: ``[B, ...]``.
        x: ``[B, ...]`` the point ``x_tau``.
        path: ``(a, s, da, ds)``, each ``[B]``.
        Returns ``eps`` ``[B, ...]``.
    """
    a, s, da, ds = (_column(c, x) for c in path)
    if v.shape != x.shape:
        raise ValueError(f"v must have the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
    if (a <= 0).any():
        raise ValueError("path's a must be > 0 (the clean signal must not have vanished)")
    slope = ds - da * s / a
    if (slope == 0).any():
        raise ValueError("path's eps coefficient ds - da s / a must not vanish")
    return (v - da / a * x) / slope


def mixture_velocity_fn(mixture: GaussianMixture2D, y: int | None = None) -> VelocityFn:
    """The exact rectified-flow velocity ``v(x, tau) = (x - E[x0 | x_tau]) / tau`` of a 2-D mixture
    (``y=None``: the marginal; ``y``: the class-``y`` conditional), ``tau`` ``[B]`` in ``(0, 1]``.
    ``x_tau = (1 - tau) x0 + tau eps`` is the mixture noised with ``c = 1 - tau``, ``s = tau``
    (:func:`course_lib.toy.noised_gaussians`); ``E[x0 | x_tau]`` is
    :meth:`course_lib.toy.GaussianMixture2D.denoised`, defined at ``tau = 1`` too.

    Args:
        mixture: the 2-D data law.
        y: ``None`` (the marginal) or a class, an int.
        Returns ``v(x [B, 2], tau [B] float) -> [B, 2]``.
    """
    if not isinstance(mixture, GaussianMixture2D):
        raise ValueError(f"mixture must be a GaussianMixture2D, got {type(mixture).__name__}")
    target = mixture if y is None else mixture.conditional(y)

    def velocity(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        tau = _check_tau(tau, x.shape[0]).to(torch.float64)
        x0_hat = target.denoised(x, (1 - tau) ** 2, tau**2)
        return ((x.to(torch.float64) - x0_hat) / tau[:, None]).to(x.dtype)

    return velocity


@torch.no_grad()
def euler_sample(velocity_fn: VelocityFn, x_1: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate ``dx / dtau = v(x, tau)`` from ``tau = 1`` (noise ``x_1``) to ``0`` with ``steps``
    Euler steps of ``1 / steps``; returns ``x_0``.

    Args:
        velocity_fn: ``(x [B, ...], tau [B] float64) -> v [B, ...]``.
        x_1: ``[B, ...]`` the noise at ``tau = 1``.
        steps: a positive int.
        Returns ``x_0`` ``[B, ...]``.
    """
    validate.integer(steps, "steps", minimum=1)
    x = x_1.clone()
    for i in range(steps, 0, -1):
        tau = torch.full((x.shape[0],), i / steps, dtype=torch.float64)
        x = x - velocity_fn(x, tau).to(x.dtype) / steps
    return x

