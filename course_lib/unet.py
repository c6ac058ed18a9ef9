"""Small, fast image models for MNIST: a conditional U-Net and two classifiers.

Images are float tensors ``[B, 1, 28, 28]`` in ``[-1, 1]``; labels are long
``[B]`` in ``0..num_classes-1`` and the U-Net's null label is ``num_classes``.

Sized for a 2-core laptop CPU. The diffusion models turn 28x28 into 14x14 by
space-to-depth (pixel unshuffle, Shi et al. 2016) and convolve only at 14x14
and 7x7: lossless, and cheaper than a U-Net with a 28x28 level; most parameters sit
at 7x7, where they cost few FLOPs (``python -m course_lib.bench`` measures the speed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import validate
from .data import IMAGE_SHAPE
from .models import timestep_embedding


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE or not x.is_floating_point():
        raise ValueError(
            f"x must be a float tensor [B, 1, 28, 28], got {x.dtype} of shape {tuple(x.shape)}"
        )


def _check_index(name: str, v: Tensor, batch: int, high: int) -> None:
    """Raise unless ``v`` is a long tensor ``[batch]`` with values in ``0..high``."""
    if v.dtype != torch.long or tuple(v.shape) != (batch,):
        raise ValueError(
            f"{name} must be a long tensor of shape [{batch}], got {v.dtype} of shape {tuple(v.shape)}"
        )
    if ((v < 0) | (v > high)).any():
        raise ValueError(f"{name} must lie in 0..{high}, got values {int(v.min())}..{int(v.max())}")


def _time_mlp(emb_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))


class ResBlock(nn.Module):
    """DDPM's residual block (Ho et al. 2020): GroupNorm, SiLU, 3x3 conv, twice.

    The embedding enters as a FiLM scale and shift after the second GroupNorm
    (Perez et al. 2018; Dhariwal & Nichol 2021's AdaGN). ``[B, c_in, H, W] -> [B, c_out, H, W]``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``x [B, c_in, H, W]``, ``emb [B, emb_dim]`` (time and label) -> ``[B, c_out, H, W]``."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class _Encoder(nn.Module):
    """Down path shared by the U-Net and the noisy classifier.

    ``[B, 1, 28, 28]`` -> pixel unshuffle ``[B, 4, 14, 14]`` -> conv -> res block
    (``h14 [B, c, 14, 14]``) -> stride-2 conv -> res block (``h7 [B, 2c, 7, 7]``).
    """

    def __init__(self, c: int, emb_dim: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, c, 3, padding=1)
        self.block14 = ResBlock(c, c, emb_dim)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.block7 = ResBlock(2 * c, 2 * c, emb_dim)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        h14 = self.block14(self.stem(F.pixel_unshuffle(x, 2)), emb)
        return h14, self.block7(self.down(h14), emb)


def _check_sizes(num_classes: int, T: int, base_channels: int, emb_dim: int) -> None:
    validate.integer(num_classes, "num_classes", minimum=1)
    validate.integer(T, "T", minimum=1)
    if validate.integer(base_channels, "base_channels", minimum=8) % 8:
        raise ValueError(f"base_channels must be a positive multiple of 8, got {base_channels}")
    if validate.integer(emb_dim, "emb_dim", minimum=2) % 2:
        raise ValueError(f"emb_dim must be a positive even integer, got {emb_dim}")


class ConditionalUNet(nn.Module):
    """Class-conditional noise predictor ``eps(x_t, t, y)``, a two-level U-Net (Ho et al. 2020).

    The label embedding (with an extra row for the null label ``num_classes``,
    used by classifier-free guidance, Ho & Salimans 2021) is added to the
    time embedding and enters every res block by FiLM.
    """

    def __init__(
        self, num_classes: int = 10, T: int = 1000, base_channels: int = 32, emb_dim: int = 64
    ) -> None:
        super().__init__()
        _check_sizes(num_classes, T, base_channels, emb_dim)
        c = base_channels
        self.num_classes, self.null_label, self.T, self.emb_dim = num_classes, num_classes, T, emb_dim
        self.time_mlp = _time_mlp(emb_dim)
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim)
        self.encoder = _Encoder(c, emb_dim)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.block_up = ResBlock(2 * c, c, emb_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 4, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        """``x [B, 1, 28, 28]``, ``t [B]`` in ``0..T-1``, ``y [B]`` in ``0..num_classes``
        (``num_classes`` is the null label) -> ``eps [B, 1, 28, 28]``."""
        _check_images(x)
        _check_index("t", t, x.shape[0], self.T - 1)
        _check_index("y", y, x.shape[0], self.num_classes)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.emb_dim, self.T)) + self.label_emb(y))
        h14, h7 = self.encoder(x, emb)
        h = self.block_up(torch.cat([self.up(h7), h14], dim=1), emb)
        return F.pixel_shuffle(self.out(h), 2)


class NoisyImageClassifier(nn.Module):
    """Noise-aware classifier ``p_phi(y | x_t, t)`` for classifier guidance.

    The U-Net's down path followed by global average pooling, as in Dhariwal &
    Nichol (2021). ``forward(x [B, 1, 28, 28], t [B]) -> logits [B, num_classes]``.
    """

    def __init__(
        self, num_classes: int = 10, T: int = 1000, base_channels: int = 32, emb_dim: int = 64
    ) -> None:
        super().__init__()
        _check_sizes(num_classes, T, base_channels, emb_dim)
        self.num_classes, self.T, self.emb_dim = num_classes, T, emb_dim
        self.time_mlp = _time_mlp(emb_dim)
        self.encoder = _Encoder(base_channels, emb_dim)
        self.head = nn.Sequential(
            nn.GroupNorm(8, 2 * base_channels), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * base_channels, num_classes),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x [B, 1, 28, 28]`` noised digits, ``t [B]`` in ``0..T-1`` -> logits ``[B, num_classes]``."""
        _check_images(x)
        _check_index("t", t, x.shape[0], self.T - 1)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.emb_dim, self.T)))
        return self.head(self.encoder(x, emb)[1])


class ImageClassifier(nn.Module):
    """Plain CNN on clean digits, the independent judge for evaluation.

    Three conv-ReLU-maxpool stages (LeNet style, LeCun et al. 1998), then a
    ``feature_dim``-unit layer whose output ``features(x)`` feeds a Frechet distance
    (Heusel et al. 2017, with this net in place of Inception).
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = 128) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(), nn.Linear(64 * 3 * 3, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[B, feature_dim]`` of ``x [B, 1, 28, 28]``."""
        _check_images(x)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, 1, 28, 28]`` clean digits -> logits ``[B, num_classes]``."""
        return self.head(self.features(x))
