"""Instructor half of the exercises of explicit_conditioning: references, hidden cases, what each tests."""

from __future__ import annotations

import functools
import math
from typing import Callable
import torch
from course_lib import diffusion, guidance, toy
from course_lib.exercises.core import Exercise, seed_from, tiny_cfg_model
from course_lib.exercises.explicit_conditioning import _SCHEDULE, _conditional_cases, _null_case
from .core import Grading


def _labels(gen: torch.Generator, n: int, K: int) -> torch.Tensor:
    return torch.randint(K, (n,), generator=gen)


def _conditional_reference(model: torch.nn.Module, y: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return guidance.model_eps_fn(model, y, model.num_classes)(x, t)


def _conditional_hidden(gen: torch.Generator) -> list[tuple]:
    model = tiny_cfg_model(seed_from(gen), 4)
    edges = [(model, 4, torch.randn(1, 2, generator=gen), torch.tensor([0])),            # null label, batch of one, t=0
             (model, 2, torch.randn(5, 2, generator=gen), torch.full((5,), 999))]        # t = T - 1
    return _conditional_cases(gen, 4, 30) + edges


def _null_eps(eps_by_label: torch.Tensor, log_likelihoods: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``E[eps | x_t] = sum_k p(k | x_t) E[eps | x_t, k]`` with ``p(k | x_t)`` by Bayes' rule
    (``softmax_k(log pi_k + log p_t(x_t | k))``): ``eps_by_label [K, B, D]``, ``log_likelihoods [B, K]``,
    ``weights [K]`` -> ``[B, D]``."""
    posterior = torch.softmax(weights.log()[None] + log_likelihoods, dim=1)       # [B, K]
    return (posterior.T[..., None] * eps_by_label).sum(0)


def _null_hidden(gen: torch.Generator) -> list[tuple]:
    ring = toy.ring(k=6)                                          # another mixture: six classes, equal weights
    unequal = toy.unequal_weights()                               # and one with weights 0.6, 0.3, 0.1
    t = int(torch.randint(1, 999, (1,), generator=gen))
    near = lambda m, t, n: m.noised(_SCHEDULE.alpha_bars[t].item()).sample(n, generator=gen)[0]  # noqa: E731
    return [_null_case(ring, near(ring, 0, 32), 0), _null_case(ring, near(ring, 999, 32), 999),   # t = 0, T - 1
            _null_case(unequal, near(unequal, 300, 32), 300),                                     # unequal weights
            _null_case(unequal, near(unequal, t, 1), t),                                          # batch of one
            _null_case(unequal, near(unequal, t, 32), t, torch.float32),                          # float32
            _null_case(toy.anisotropic(), 20 * torch.randn(8, 2, generator=gen), 0)]             # far, t = 0


@functools.lru_cache(maxsize=None)
def _brief_twin(fraction: float, p_uncond: float, label: int = 1) -> dict:
    """Lesson 01, section 5: the shipped toy recipe shortened to 2,000 steps of 256, trained from the
    same initial weights and random numbers on section 5's 20,000 pairs with class ``label`` thinned
    to ``fraction`` (``1.0``: the balanced twin); returns ``evaluate.fit_by_class`` of its samples
    (DDIM, 100 steps, eta = 0, seed 100) for every label and the null label. Cached: each twin trains once."""
    from .. import conditional, data, evaluate, models, pretrained, recipes, training

    x, y = toy.anisotropic().sample(20_000, generator=torch.Generator().manual_seed(3))
    if fraction != 1.0:
        x, y = data.subsample_class(x, y, label, fraction, generator=torch.Generator().manual_seed(4))
    shipped = pretrained.load("toy_cfg")
    config, schedule, K = recipes.ToyCFGConfig(**shipped.meta["config"]), shipped.schedule, shipped.num_classes
    net = training.seeded_init(0, lambda: models.ConditionalMLP(K, schedule.T, config.width, config.depth))
    training.train_diffusion(net, x, y, schedule, steps=2000, batch_size=256, lr=config.lr,
                             p_uncond=p_uncond, ema_decay=config.ema_decay,
                             paired_dropout=config.paired_dropout, generator=torch.Generator().manual_seed(0),
                             progress=False)
    samples = conditional.sample_by_label(net, range(K + 1), 2000, schedule, steps=100, eta=0.0, seed=100)
    fits = evaluate.fit_by_class(samples, toy.anisotropic(), seed=200)
    fits["examples"] = int((y == label).sum())
    return fits


def expected_rare_sweep(fractions: tuple[float, ...] = (0.2, 0.06, 0.02, 0.006),
                        label: int = 1) -> dict[float, tuple[int, float, float]]:
    """Lesson 01, exercise 1: ``{fraction: (examples kept, SW of class label, SW of the null label)}``,
    and ``1.0`` for the balanced twin."""
    from .. import pretrained, recipes

    p_uncond, out = recipes.ToyCFGConfig(**pretrained.load("toy_cfg").meta["config"]).p_uncond, {}
    for fraction in (1.0, *fractions):
        fits = _brief_twin(fraction, p_uncond, label)
        out[fraction] = (fits["examples"], fits[label].sw, fits[3].sw)
    return out


def expected_self_consistency(ts: tuple[int, ...] = tuple(range(0, 1000, 50)), n: int = 2000) -> dict[int, float]:
    """Lesson 01, exercise 2: ``{t: relative error}`` of the shipped network's null prediction against
    the posterior-weighted sum of its own conditional predictions (exact likelihoods), at ``n`` points
    of the noised mixture (seed ``60 + t``)."""
    from .. import metrics, pretrained

    shipped, mixture = pretrained.load("toy_cfg"), toy.anisotropic()
    model, schedule, K = shipped.model, shipped.schedule, shipped.num_classes
    out = {}
    for t in ts:
        noised = mixture.noised(schedule.alpha_bars[t].item())
        x, tt = noised.sample(n, generator=torch.Generator().manual_seed(60 + t))[0], torch.full((n,), t)
        with torch.no_grad():
            per_label = torch.stack([guidance.model_eps_fn(model, k, K)(x, tt) for k in range(K)]).double()
            own_null = guidance.model_eps_fn(model, K, K)(x, tt).double()
        log_lik = torch.stack([noised.log_prob(x, y=k) for k in range(K)], dim=1)
        out[t] = metrics.relative_error(own_null, _null_eps(per_label, log_lik, mixture.weights))
    return out


def expected_dropout(p_unconds: tuple[float, ...] = (0.0, 0.2, 0.5)) -> dict[float, dict[int, tuple[float, float]]]:
    """Lesson 01, exercise 3: ``{p_uncond: {label: (SW, floor)}}`` of balanced twins trained with each
    ``p_uncond`` (label 3: the null label against ``p(x)``)."""
    return {p: {k: (_brief_twin(1.0, p)[k].sw, _brief_twin(1.0, p)[k].floor) for k in range(4)} for p in p_unconds}


GRADING = [
    Grading(name="conditional_eps_fn", reference=_conditional_reference, hidden_cases=_conditional_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="null_eps", reference=_null_eps, hidden_cases=_null_hidden,
            understanding="TODO", shortcut="TODO"),
]
