"""Guidance Lab: conditional diffusion, classifier guidance and classifier-free guidance."""

from __future__ import annotations

import random

import numpy as np
import torch

from . import validate
from .device import pick_device

__version__ = "0.1.0"


def setup(seed: int = 0) -> torch.device:
    """Seed Python, NumPy and torch, pick a device and say which.

    Returns the device (CUDA, then MPS, then CPU)."""
    validate.integer(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = pick_device()
    print(f"course_lib {__version__}: seed {seed}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    return device
