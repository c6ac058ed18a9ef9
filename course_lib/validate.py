"""Argument checks that name the argument and what is allowed (docs/conventions.md, "Arguments and errors").

Every public function checks its plain-number arguments through these three helpers, so a
student who passes ``steps=2.5``, ``w=float("nan")`` or ``progress="yes"`` reads the same kind of
message everywhere::

    ValueError: steps must be an integer in 1..1000 (the schedule's T), got 2.5

``bool`` is never accepted as a number (``True`` is an ``int`` in Python, and ``steps=True`` is a
slip, not a request for one step). A one-element tensor is accepted where a float is, so a weight
read off a tensor needs no ``.item()``.
"""

from __future__ import annotations

import math

import torch


def _bounds(minimum: float | None, maximum: float | None, above: float | None) -> str:
    """The allowed range in words: ``" in 1..10"``, ``" >= 0"``, ``" > 0"`` or ``""``."""
    if minimum is not None and maximum is not None:
        return f" in {minimum:g}..{maximum:g}"
    if minimum is not None:
        return f" >= {minimum:g}"
    if above is not None:
        return f" > {above:g}" + (f" and <= {maximum:g}" if maximum is not None else "")
    return f" <= {maximum:g}" if maximum is not None else ""


def integer(value: object, name: str, *, minimum: int | None = None, maximum: int | None = None,
            hint: str = "") -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` and the range ``minimum..maximum`` (inclusive).

    Args:
        value: what the caller passed; a Python ``int`` (not a ``bool``).
        name: the argument's name as the caller wrote it, e.g. ``"steps"``.
        minimum, maximum: inclusive bounds, or None for none.
        hint: words appended to the allowed range, e.g. ``" (the schedule's T)"``.
    """
    if (isinstance(value, bool) or not isinstance(value, int)
            or (minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        raise ValueError(f"{name} must be an integer{_bounds(minimum, maximum, None)}{hint}, got {value!r}")
    return value


def number(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, hint: str = "") -> float:
    """``value`` as a finite float, or ``ValueError`` naming ``name`` and what is allowed.

    Args:
        value: an ``int``, a ``float`` or a one-element tensor (not a ``bool``, never NaN or infinite).
        name: the argument's name as the caller wrote it, e.g. ``"w"``.
        minimum, maximum: inclusive bounds, or None for none.
        above: an exclusive lower bound (``above=0`` asks for a positive number); not with ``minimum``.
        hint: words appended to the allowed range.
    """
    if minimum is not None and above is not None:
        raise ValueError("give minimum or above, not both")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    allowed = f"{name} must be a finite number{_bounds(minimum, maximum, above)}{hint}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(allowed)
    if ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)
            or (above is not None and value <= above)):
        raise ValueError(allowed)
    return float(value)


def flag(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ValueError`` (``progress=1`` or ``"no"`` is a slip)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def labels(y: torch.Tensor | int, batch: int, num_classes: int, name: str = "y",
                 allow_null: bool = False) -> torch.Tensor:
    """Return ``y`` as a long tensor ``[batch]``; raise ``ValueError`` unless every
    label is in ``0..num_classes-1`` (or ``num_classes``, the null label, if allowed).

    Args:
        y: an int or a long tensor ``[batch]``; ``num_classes``: ``K``."""
    top = num_classes if allow_null else num_classes - 1
    if isinstance(y, int) and not isinstance(y, bool):
        y = torch.full((batch,), y, dtype=torch.long)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.ndim != 1:
        raise ValueError(f"{name} must be an int or a 1-D long tensor of labels in 0..{top}")
    if y.shape[0] != batch:
        raise ValueError(f"{name} must have one label per sample ({batch}), got {y.shape[0]}")
    if y.numel() and (y.min() < 0 or y.max() > top):
        raise ValueError(f"{name} must lie in 0..{top}, got values in {int(y.min())}..{int(y.max())}")
    return y
