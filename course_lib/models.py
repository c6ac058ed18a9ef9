"""Small networks for 2-D data: a conditional denoiser and a noise-aware classifier; the
course's one timestep embedding; and :class:`FixedTimeClassifier`, which reads every input
at one time step (a clean classifier used off the shelf).

Both networks embed the time step with sinusoids (Vaswani et al. 2017, as in DDPM) and
follow docs/conventions.md, "Labels and the null label": ``model(x, t, y) -> eps`` with ``y == num_classes``
the null label, ``classifier(x, t) -> logits [B, K]``.

The conditioning (time, and label for the denoiser) does not depend on ``x``, and
a sampler's batch shares one ``t``: there it is computed once per distinct label
and gathered (:func:`shared_rows`), which saves about a third of a sampling
step without changing the result. Training batches, whose ``t`` differ, take the
direct path.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import validate


def timestep_embedding(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal embedding ``t [B] -> [B, dim]`` of time ``t`` in ``[0, T)``: the Transformer
    position encoding (Vaswani et al. 2017) that DDPM uses for time (Ho et al. 2020), applied
    to ``1000 * t / T``, so models built for any ``T`` share one clock (``T = 1000``: DDPM's).
    The one embedding of the course: the 2-D nets here and the U-Net of :mod:`course_lib.unet`."""
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be a positive even integer, got {dim}")
    if T < 1:
        raise ValueError(f"T must be a positive integer, got {T}")
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor [B], got shape {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = (t.float() * (1000.0 / T))[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def shared_rows(t: torch.Tensor, y: torch.Tensor | None = None):
    """For a batch that shares one ``t`` (a sampler's): ``(t_rows, y_rows, index)``,
    the distinct ``(t, y)`` pairs and each sample's row, so that features of
    ``(t, y)`` are computed per row and gathered with ``index``. Otherwise
    ``(t, y, None)``: one row per sample, nothing to gather.

    Args:
        t: ``[B]`` long time steps.
        y: ``None`` or ``[B]`` long labels."""
    if t.numel() < 2 or not bool((t == t[0]).all()):
        return t, y, None
    if y is None:
        return t[:1], None, torch.zeros_like(t)
    y_rows, index = torch.unique(y, return_inverse=True)
    return t[: y_rows.numel()], y_rows, index


def _gather(rows: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """``rows[index]``; ``index_select`` is several times faster than fancy indexing on the CPU."""
    return rows if index is None else torch.index_select(rows, 0, index)


def check_model_inputs(x: torch.Tensor, t: torch.Tensor, T: int, feature_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, *feature_shape]`` and ``t`` long ``[B]`` in ``0..T-1``.

    Args:
        x: expected ``[B, *feature_shape]`` float.
        t: expected ``[B]`` long in ``0..T-1``."""
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != feature_shape or x.ndim != len(feature_shape) + 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [B, {', '.join(map(str, feature_shape))}], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a long tensor of shape [{x.shape[0]}]")
    if t.numel() and (t.min() < 0 or t.max() >= T):
        raise ValueError(f"t must lie in 0..{T - 1} (the model was built for T={T})")


def _check_sizes(num_classes: int, T: int, width: int, depth: int, min_classes: int) -> None:
    for name, value, low in (("num_classes", num_classes, min_classes), ("T", T, 2), ("width", width, 2),
                             ("depth", depth, 0)):
        validate.integer(value, name, minimum=low)


class ResidualBlock(nn.Module):
    """``h + Linear(SiLU(Linear(LayerNorm(h)) + Linear(c)))``: a residual MLP block
    that re-reads the conditioning ``c`` (time and label embedding) at every depth.
    ``cond(c)`` is applied by the caller, once per distinct ``c``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.inner, self.cond = nn.LayerNorm(width), nn.Linear(width, width), nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``h`` ``[B, width]`` features, ``cond`` ``[B, width]`` each sample's ``cond(c)`` ``-> [B, width]``."""
        return h + self.outer(F.silu(self.inner(self.norm(h)) + cond))


class _TimeConditioned(nn.Module):
    """Shared trunk: input and conditioning embeddings summed, then ``depth`` residual blocks."""

    def __init__(self, T: int, width: int, depth: int, data_dim: int) -> None:
        super().__init__()
        self.T, self.width, self.depth, self.data_dim = T, width, depth, data_dim
        self.inp = nn.Linear(data_dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([ResidualBlock(width) for _ in range(depth)])

    def _trunk(self, x: torch.Tensor, c: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """``c`` ``[rows, width]``: the conditioning per row; ``index`` ``[B]`` picks each sample's row."""
        h = self.inp(x) + _gather(c, index)
        for block in self.blocks:
            h = block(h, _gather(block.cond(c), index))
        return h


class ConditionalMLP(_TimeConditioned):
    """``eps(x_t, t; y)`` for 2-D points.

    ``c = time(t) + label(y)``; ``h = inp(x_t) + c``; ``depth`` residual blocks
    re-read ``c``; then ``eps = out(h) + A(c) x_t + b(c)``. Row ``num_classes`` of
    the label table is the null label, trained by label dropout for
    classifier-free guidance. The affine term ``A(c) x_t + b(c)`` (a 2x2 matrix and
    a vector per ``(t, y)``, zero at initialisation) carries what is linear in
    ``x_t``: all of ``eps`` at high noise (``eps ~ x_t``), and for one Gaussian
    class at any ``t`` (its exact ``eps`` is affine in ``x_t``), so the MLP only learns what bends, and the prediction extrapolates sensibly
    into the sparse regions that strong guidance visits.
    """

    def __init__(self, num_classes: int, T: int = 1000, width: int = 64, depth: int = 3, data_dim: int = 2) -> None:
        _check_sizes(num_classes, T, width, depth, 1)
        super().__init__(T, width, depth, data_dim)
        self.num_classes = num_classes
        self.label = nn.Embedding(num_classes + 1, width)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, data_dim))
        self.affine = nn.Linear(width, data_dim * data_dim + data_dim)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    @property
    def null_label(self) -> int:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, 2]``, ``t`` ``[B]`` long in ``0..T-1``, ``y`` ``[B]`` long in
        ``0..num_classes`` (``num_classes``: no label) ``-> eps [B, 2]``."""
        check_model_inputs(x, t, self.T, (self.data_dim,))
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x.shape[0],):
            raise ValueError(f"y must be a long tensor of shape [{x.shape[0]}]")
        if y.numel() and (y.min() < 0 or y.max() > self.num_classes):
            raise ValueError(f"y must lie in 0..{self.num_classes} ({self.num_classes} is the null label)")
        t_rows, y_rows, index = shared_rows(t, y)
        c = self.time(timestep_embedding(t_rows, self.width, self.T)) + self.label(y_rows)  # [rows, width]
        d = self.data_dim
        affine = _gather(self.affine(c), index)
        linear = (affine[:, : d * d].view(-1, d, d) @ x[:, :, None])[:, :, 0] + affine[:, d * d:]
        return self.out(self._trunk(x, c, index)) + linear


class NoisyClassifier2D(_TimeConditioned):
    """A noise-aware classifier ``p_phi(y | x_t, t)`` for 2-D points: ``(x, t) -> logits [B, K]``."""

    def __init__(self, num_classes: int, T: int = 1000, width: int = 64, depth: int = 2, data_dim: int = 2) -> None:
        _check_sizes(num_classes, T, width, depth, 2)
        super().__init__(T, width, depth, data_dim)
        self.num_classes = num_classes
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, 2]``, ``t`` ``[B]`` long in ``0..T-1`` ``-> logits [B, K]``."""
        check_model_inputs(x, t, self.T, (self.data_dim,))
        t_rows, _, index = shared_rows(t)
        return self.out(self._trunk(x, self.time(timestep_embedding(t_rows, self.width, self.T)), index))


class FixedTimeClassifier(nn.Module):
    """``(x, t) -> classifier(x, t0)`` whatever ``t`` it is given: a classifier that
    reads every input as if it were at time step ``t0``. With ``t0 = 0`` this is how
    a classifier trained on clean data only (``train_classifier(..., noisy=False)``)
    is used off the shelf: it has never seen another time step."""

    def __init__(self, classifier: nn.Module, t0: int = 0) -> None:
        super().__init__()
        validate.integer(t0, "t0", minimum=0, hint=" (a time step)")
        self.classifier, self.t0 = classifier, t0
        self.num_classes, self.T = getattr(classifier, "num_classes", None), getattr(classifier, "T", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, ...]`` as the classifier takes it (``[B, 2]`` points), ``t`` ``[B]`` long
        (ignored: every row is read at ``t0``) ``-> logits [B, K]``."""
        return self.classifier(x, torch.full_like(t, self.t0))
