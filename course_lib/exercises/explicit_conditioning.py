"""Graded exercises of lesson 01 (explicit conditioning)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import guidance
from .core import Exercise, seed_from, tiny_cfg_model

LESSON = "01_explicit_conditioning"


def _call_drop_labels(fn: Callable, y: torch.Tensor, p_uncond: float, null_label: int, seed: int) -> torch.Tensor:
    return fn(y, p_uncond, null_label, torch.Generator().manual_seed(seed))


def _compare_drop_labels(out: object, args: tuple) -> float:
    """Checked by its statistics (any way of drawing the coin flips is right): labels kept are
    unchanged, and the share dropped is within five standard errors of ``p_uncond``; returns
    the distance in units of five standard errors."""
    y, p, null_label, _ = args
    if not isinstance(out, torch.Tensor) or out.shape != y.shape:
        raise AssertionError(f"drop_labels must return one label per input label, shape {tuple(y.shape)}")
    kept = out != null_label
    if not torch.equal(out[kept].long(), y[kept]):
        raise AssertionError("drop_labels changed a label to something other than the null label")
    share = 1 - kept.double().mean().item()
    allowed = 5 * math.sqrt(p * (1 - p) / y.numel())
    gap = abs(share - p)
    return gap / allowed if allowed > 0 else (0.0 if gap == 0 else math.inf)


def _labels(gen: torch.Generator, n: int, K: int) -> torch.Tensor:
    return torch.randint(K, (n,), generator=gen)


def _drop_public(gen: torch.Generator) -> list[tuple]:
    y, seed = _labels(gen, 100_000, 10), seed_from(gen)
    return [(y, p, 10, seed) for p in (0.0, 1.0, 0.15)]


def _drop_hidden(gen: torch.Generator) -> list[tuple]:
    p = 0.05 + 0.45 * torch.rand((), generator=gen).item()
    return [(_labels(gen, 100_000, 3), 0.0, 3, seed_from(gen)), (_labels(gen, 100_000, 3), 1.0, 3, seed_from(gen)),
            (_labels(gen, 1, 10), 1.0, 10, seed_from(gen)),                               # batch of one
            (_labels(gen, 100_000, 10), p, 10, seed_from(gen)), (_labels(gen, 50_000, 7), 0.5, 7, seed_from(gen))]


def _call_conditional(fn: Callable, model: torch.nn.Module, y: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        eps_fn = fn(model, y)
        if not callable(eps_fn):
            raise AssertionError(f"conditional_eps_fn must return a function eps_fn(x, t), got {type(eps_fn).__name__}")
        return eps_fn(x, t)


def _conditional_reference(model: torch.nn.Module, y: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return guidance.model_eps_fn(model, y, model.num_classes)(x, t)


def _conditional_cases(gen: torch.Generator, K: int, n: int) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), K)
    x, t = torch.randn(n, 2, generator=gen), torch.randint(1000, (n,), generator=gen)
    return [(model, y, x, t) for y in range(K + 1)]


def _conditional_hidden(gen: torch.Generator) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), 4)
    edges = [(model, 4, torch.randn(1, 2, generator=gen), torch.tensor([0])),            # null label, batch of one, t=0
             (model, 2, torch.randn(5, 2, generator=gen), torch.full((5,), 999))]        # t = T - 1
    return _conditional_cases(gen, 4, 30) + edges


EXERCISES = [
    Exercise(name="drop_labels", lesson=LESSON, points=1, public_cases=_drop_public, hidden_cases=_drop_hidden,
             reference=None, compare=_compare_drop_labels, call=_call_drop_labels, tolerance=1.0,
             hint="one independent coin flip per label, drawn from the generator you are given; "
                  "reread the label dropout section"),
    Exercise(name="conditional_eps_fn", lesson=LESSON, points=1,
             public_cases=lambda gen: _conditional_cases(gen, 3, 40), hidden_cases=_conditional_hidden,
             reference=_conditional_reference, call=_call_conditional, tolerance=1e-5,
             hint="the model takes one label per point of the batch; reread the model interface section"),
]
