"""Shared test settings: the checkout on sys.path for the instructor material, one torch thread (small tensors run fastest and steadiest so), and the
small random MNIST networks several test modules share."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the instructor material (instructor/) is not installed: tests import it from here
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    """Small random networks (conditional U-Net, noise-aware classifier, judge): fast, and their
    outputs depend on x, t and y."""
    from course_lib.unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier

    torch.manual_seed(0)
    model = ConditionalUNet(base_channels=8, emb_dim=8).eval()
    classifier = NoisyImageClassifier(base_channels=8, emb_dim=8).eval()
    judge = ImageClassifier(feature_dim=16).eval()
    return model, classifier, judge
