"""One device picker for the whole course: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: the first of CUDA, MPS and the CPU that this torch can use.
    Otherwise ``device`` as a ``torch.device``, checked: ``ValueError`` if this torch cannot use it."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'mps' or another torch device, got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but this torch sees no CUDA GPU")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for, but MPS is not available")
    return dev
