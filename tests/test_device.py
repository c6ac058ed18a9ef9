"""The one device picker: CUDA, then MPS, then the CPU; a named device is checked."""

import pytest
import torch

import course_lib
from course_lib.device import pick_device


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")
    assert course_lib.pick_device is pick_device  # setup() prints what this picks


def test_a_named_device_is_checked():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        pick_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
