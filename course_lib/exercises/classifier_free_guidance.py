"""Graded exercises of lesson 03 (classifier-free guidance)."""

from __future__ import annotations

import torch

from .. import diffusion, guidance
from .core import Exercise, seed_from, tiny_cfg_model

LESSON = "03_classifier_free_guidance"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


def _cfg(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Ho & Salimans 2021, eq. 6: ``(1 + w) eps_cond - w eps_uncond`` (as :func:`guidance.cfg`)."""
    return guidance.cfg(lambda x, t: eps_cond, lambda x, t: eps_uncond, w)(None, None)


def _cfg_public(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    return [(eps_c, eps_u, w) for w in (-1.0, 0.0, 0.5, 3.0)]


def _cfg_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = torch.randn(20, 2, generator=gen), torch.randn(20, 2, generator=gen)
    w = 0.1 + 8 * torch.rand((), generator=gen).item()
    images = torch.randn(2, 1, 28, 28, generator=gen, dtype=torch.float64), torch.randn(2, 1, 28, 28, generator=gen,
                                                                                          dtype=torch.float64)
    return [(eps_c, eps_u, -1.0), (eps_c, eps_u, 0.0), (eps_c, eps_u, w), (eps_c[:1], eps_u[:1], 2.0),
            (*images, w)]


def _implicit_reference(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: int,
                        schedule: diffusion.Schedule) -> torch.Tensor:
    K = model.num_classes
    return guidance.implicit_classifier_grad(guidance.model_eps_fn(model, y, K), guidance.model_eps_fn(model, K, K),
                                             x, t, schedule)


def _implicit_public(gen: torch.Generator) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), 3)
    x, t = torch.randn(40, 2, generator=gen), torch.randint(1, 1000, (40,), generator=gen)
    return [(model, x, t, y, _LINEAR) for y in range(3)]


def _implicit_hidden(gen: torch.Generator) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), 4)
    x, t = torch.randn(30, 2, generator=gen), torch.randint(1, 1000, (30,), generator=gen)
    return ([(model, x, t, y, _LINEAR) for y in range(4)]
            + [(model, x[:1], torch.tensor([999]), 1, _LINEAR),                     # batch of one, t = T - 1
               (model, x, t, 2, _COSINE), (model, x[:5], torch.full((5,), 1), 0, _LINEAR)])  # cosine; t = 1


EXERCISES = [
    Exercise(name="cfg_eps", lesson=LESSON, points=1, public_cases=_cfg_public, hidden_cases=_cfg_hidden,
             reference=_cfg, tolerance=1e-5,
             hint="w = -1 must give the unconditional prediction and w = 0 the conditional one"),
    Exercise(name="implicit_grad", lesson=LESSON, points=1, public_cases=_implicit_public,
             hidden_cases=_implicit_hidden, reference=_implicit_reference, tolerance=1e-5,
             hint="compare the two predictions of the same network and turn an eps difference into a score "
                  "difference: every point has its own noise level"),
]
