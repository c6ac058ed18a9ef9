"""Tilting a conditional by its classifier: what classifier-free guidance adds, and what it does not sample.

CFG with weight ``w`` (docs/conventions.md, "Guidance weights") adds ``w`` times the gradient of the
*implicit classifier* ``p(y | x_t) = p(x_t | y) p(y) / p(x_t)`` to the conditional
score. With ``score = -eps / sigma_t`` that gradient is

    grad log p(y | x_t) = grad log p(x_t | y) - grad log p(x_t)
                        = (eps(x_t, null) - eps(x_t, y)) / sigma_t,             (Ho & Salimans 2021, sec. 3.2)

so one network trained with label dropout holds a classifier without ever being
trained as one. CFG is often described as sampling the *tilted density*

    p_w(x | y) = p(x | y) p(y | x)^w / Z  ∝  p(x | y)^(1 + w) p(x)^(-w),

whose score is ``(1 + w) grad log p(x | y) - w grad log p(x)``: exactly the CFG
combination, but only at ``t = 0``. At ``t > 0`` CFG combines the scores of the
noised conditional and the noised marginal, which is the score of ``p_t(x | y)^(1+w)
p_t(x)^(-w)``, not of the noised tilted density ``p_w * N(0, sigma_t^2)``: tilting and
noising do not commute, so CFG does not sample ``p_w`` (Chidambaram et al. 2024,
*What does guidance do?*; Bradley & Nakkiran 2024, *Classifier-free guidance is a
predictor-corrector*). :class:`TiltedDensity` computes ``p_w`` on a grid for a 2-D
mixture, with samples and the score of its noised versions, so that the two can
be compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .diffusion import EpsFn, Schedule, _per_sample
from . import validate
from .toy import GaussianMixture2D


@torch.no_grad()
def implicit_classifier_grad(eps_cond_fn: EpsFn, eps_uncond_fn: EpsFn, x: torch.Tensor, t: torch.Tensor,
                             schedule: Schedule) -> torch.Tensor:
    """The implicit classifier's gradient ``(eps(x_t, null) - eps(x_t, y)) / sigma_t``, shape ``[B, 2]``
    (or ``[B, ...]``), an estimate of ``grad_x log p(y | x_t)``; ``eps_cond_fn`` holds the label ``y``.

    Args:
        x: ``[B, 2]`` points (or ``[B, ...]``) at step ``t``.
        t: ``[B]`` long time steps in ``0..T-1``."""
    schedule.check_t(t, x.shape[0])
    return (eps_uncond_fn(x, t) - eps_cond_fn(x, t)) / _per_sample(schedule.sigmas, t, x)


class TiltedDensity:
    """``p_w(x | y) ∝ p(x | y) p(y | x)^w`` for a 2-D mixture, normalised numerically on a grid.

    Args:
        mixture: the data distribution; class ``y`` is its component ``y``.
        y: the class (an int in ``0..K-1``).
        w: the tilt, a CFG weight ``>= -1`` (``-1``: ``p(x)``, ``0``: ``p(x | y)``).
        extent: ``(xmin, xmax, ymin, ymax)`` of the grid; it must hold all but a
            negligible part of the mass (checked: ``ValueError`` otherwise).
        resolution: grid points per side; cells are ``extent / (resolution - 1)`` wide.
    """

    def __init__(self, mixture: GaussianMixture2D, y: int, w: float, *,
                 extent: Sequence[float] = (-7.0, 7.0, -7.0, 7.0), resolution: int = 401) -> None:
        if not isinstance(mixture, GaussianMixture2D):
            raise ValueError(f"mixture must be a GaussianMixture2D, got {type(mixture).__name__}")
        validate.integer(y, "y", minimum=0, maximum=mixture.num_classes - 1)
        e = tuple(float(v) for v in extent)
        if len(e) != 4 or not all(math.isfinite(v) for v in e) or e[0] >= e[1] or e[2] >= e[3]:
            raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, "
                             f"got {extent!r}")
        validate.integer(resolution, "resolution", minimum=3)
        w = validate.number(w, "w", minimum=-1)
        self.mixture, self.y, self.w, self.extent, self.resolution = mixture, y, w, e, resolution
        xs = torch.linspace(e[0], e[1], resolution, dtype=torch.float64)
        ys = torch.linspace(e[2], e[3], resolution, dtype=torch.float64)
        self.cell = ((e[1] - e[0]) / (resolution - 1), (e[3] - e[2]) / (resolution - 1))
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        self.points = torch.stack([gx.flatten(), gy.flatten()], dim=1)         # [G, 2], G = resolution**2
        log_unnorm = self.unnormalised_log_prob(self.points)                   # [G]
        self.log_norm = float(torch.logsumexp(log_unnorm, 0)) + math.log(self.cell[0] * self.cell[1])
        self.cell_log_probs = torch.log_softmax(log_unnorm, 0)                 # [G] log mass of each cell
        border = (gx == xs[0]) | (gx == xs[-1]) | (gy == ys[0]) | (gy == ys[-1])
        edge_mass = float(self.cell_log_probs[border.flatten()].exp().sum())
        if edge_mass > 1e-6:
            raise ValueError(f"extent {e} is too small: the grid's border holds {edge_mass:.1e} of the mass")

    def __repr__(self) -> str:
        return f"TiltedDensity(y={self.y}, w={self.w:g}, resolution={self.resolution})"

    def unnormalised_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(1 + w) log p(x | y) - w log p(x)`` of ``x [n, 2]``, shape ``[n]``: ``log p_w`` up to a constant
        (``log p(y | x) = log p(x | y) + log pi_y - log p(x)``, and ``w log pi_y`` is constant)."""
        log_cond = self.mixture.log_prob(x, self.y)
        if self.w == 0.0:
            return log_cond
        return (1 + self.w) * log_cond - self.w * self.mixture.log_prob(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p_w(x | y)`` of ``x [n, 2]``, shape ``[n]``, normalised on the grid."""
        return self.unnormalised_log_prob(x) - self.log_norm

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``grad_x log p_w(x | y) = (1 + w) grad log p(x | y) - w grad log p(x)``, shape ``[n, 2]``,
        at ``x [n, 2]``."""
        return (1 + self.w) * self.mixture.score(x, self.y) - self.w * self.mixture.score(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``[n, 2]`` (float32): a grid cell drawn by its mass, then a uniform point in it."""
        validate.integer(n, "n", minimum=1)
        idx = torch.multinomial(self.cell_log_probs.exp(), n, replacement=True, generator=generator)
        jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
        return (self.points[idx] + jitter * torch.tensor(self.cell, dtype=torch.float64)).float()

    def noised_score(self, x: torch.Tensor, alpha_bar: float, *, chunk: int = 256,
                     max_stride: int = 4) -> torch.Tensor:
        """Score ``[n, 2]`` of the *noised* tilted density, the law of ``sqrt(a) x0 + sqrt(1 - a) eps``
        with ``x0 ~ p_w`` and ``a = alpha_bar`` in (0, 1), by quadrature over the grid (Tweedie):
        ``(sqrt(a) E[x0 | x_t] - x_t) / (1 - a)``. Accurate where the noised density has its mass, while
        ``sqrt((1 - a) / a)`` spans a cell or more; where it spans several, every ``stride``-th grid point
        (at most ``max_stride``) suffices.

        Args:
            x: ``[n, 2]`` points ``x_t``; alpha_bar: ``a``, a float in (0, 1)."""
        a = float(alpha_bar)
        if not (math.isfinite(a) and 0 < a < 1):
            raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {alpha_bar!r}")
        validate.integer(chunk, "chunk", minimum=1)
        validate.integer(max_stride, "max_stride", minimum=1)
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"x must be a tensor of shape [n, 2], got {getattr(x, 'shape', type(x).__name__)}")
        x = x.to(torch.float64)
        # the kernel is sqrt((1 - a) / a) wide in x0; the quadrature may skip points while it spans 2 strides
        stride = max(1, min(max_stride, int(math.sqrt((1 - a) / a) / (2 * max(self.cell)))))
        r = self.resolution
        log_mass = torch.log_softmax(self.cell_log_probs.reshape(r, r)[::stride, ::stride].flatten(), 0)
        pts = self.points.reshape(r, r, 2)[::stride, ::stride].reshape(-1, 2)
        keep = log_mass > log_mass.max() - 30                           # points holding any mass
        pts = pts[keep] * math.sqrt(a)                                  # sqrt(a) x0 at each point, [G', 2]
        # log N(x_t; sqrt(a) x0, (1 - a) I) + log mass, minus terms constant in x0: a matmul per chunk
        offset = log_mass[keep] - (pts**2).sum(1) / (2 * (1 - a))
        out = []
        for xb in x.split(chunk):
            weights = torch.softmax(xb @ pts.T / (1 - a) + offset, dim=1)          # p(x0 = cell | x_t), [b, G']
            out.append((weights @ pts - xb) / (1 - a))                            # sqrt(a) E[x0 | x_t] - x_t
        return torch.cat(out) if out else x.new_zeros(0, 2)
