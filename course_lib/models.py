"""Small networks for 2-D data: a conditional denoiser and a noise-aware classifier.

Both embed the time step with sinusoids (Vaswani et al. 2017, as in DDPM) and
follow DESIGN.md section 3: ``model(x, t, y) -> eps`` with ``y == num_classes``
the null label, ``classifier(x, t) -> logits [B, K]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal features ``[B, dim]`` of ``t`` rescaled to ``0..1000`` (Transformer
    positional encoding, as in DDPM), so models built for any ``T`` see the same range."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = (t.float() * (1000.0 / T))[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def check_model_inputs(x: torch.Tensor, t: torch.Tensor, T: int, feature_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, *feature_shape]`` and ``t`` long ``[B]`` in ``0..T-1``."""
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != feature_shape or x.ndim != len(feature_shape) + 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [B, {', '.join(map(str, feature_shape))}], got {shape}")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a long tensor of shape [{x.shape[0]}]")
    if t.numel() and (t.min() < 0 or t.max() >= T):
        raise ValueError(f"t must lie in 0..{T - 1} (the model was built for T={T})")


class ResidualBlock(nn.Module):
    """``h + Linear(SiLU(Linear(LayerNorm(h)) + Linear(c)))``: a residual MLP block
    that re-reads the conditioning ``c`` (time and label embedding) at every depth."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.inner, self.cond = nn.LayerNorm(width), nn.Linear(width, width), nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.outer(torch.nn.functional.silu(self.inner(self.norm(h)) + self.cond(c)))


class ConditionalMLP(nn.Module):
    """``eps(x_t, t; y)`` for 2-D points: the input, time and label embeddings are
    summed, then ``depth`` residual blocks. Row ``num_classes`` of the label table
    is the null label, trained by label dropout for classifier-free guidance."""

    def __init__(self, num_classes: int, T: int = 1000, width: int = 64, depth: int = 2, data_dim: int = 2) -> None:
        super().__init__()
        if num_classes < 1 or T < 2 or width < 2 or depth < 0:
            raise ValueError("need num_classes >= 1, T >= 2, width >= 2 and depth >= 0")
        self.num_classes, self.T, self.width, self.data_dim = num_classes, T, width, data_dim
        self.inp = nn.Linear(data_dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(num_classes + 1, width)
        self.blocks = nn.ModuleList([ResidualBlock(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, data_dim))

    @property
    def null_label(self) -> int:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_model_inputs(x, t, self.T, (self.data_dim,))
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x.shape[0],):
            raise ValueError(f"y must be a long tensor of shape [{x.shape[0]}]")
        if y.numel() and (y.min() < 0 or y.max() > self.num_classes):
            raise ValueError(f"y must lie in 0..{self.num_classes} ({self.num_classes} is the null label)")
        c = self.time(timestep_embedding(t, self.width, self.T)) + self.label(y)
        h = self.inp(x) + c
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)


class NoisyClassifier2D(nn.Module):
    """A noise-aware classifier ``p_phi(y | x_t, t)`` for 2-D points: ``(x, t) -> logits [B, K]``."""

    def __init__(self, num_classes: int, T: int = 1000, width: int = 64, depth: int = 2, data_dim: int = 2) -> None:
        super().__init__()
        if num_classes < 2 or T < 2 or width < 2 or depth < 0:
            raise ValueError("need num_classes >= 2, T >= 2, width >= 2 and depth >= 0")
        self.num_classes, self.T, self.width, self.data_dim = num_classes, T, width, data_dim
        self.inp = nn.Linear(data_dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([ResidualBlock(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_model_inputs(x, t, self.T, (self.data_dim,))
        c = self.time(timestep_embedding(t, self.width, self.T))
        h = self.inp(x) + c
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)

    def log_prob_fn(self):
        """``(x, t) -> log p_phi(y | x_t) [B, K]`` for classifier guidance."""
        return lambda x, t: torch.log_softmax(self(x, t), dim=1)
