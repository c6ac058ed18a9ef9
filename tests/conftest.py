"""Shared test settings: one torch thread (small tensors run fastest and steadiest so)."""

import torch

torch.set_num_threads(1)
