"""Graded exercises of lesson 01 (explicit conditioning), and the results its end-of-lesson
exercises ask the student to find (``expected_*``)."""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from .. import diffusion, guidance, toy
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


def _null_eps(eps_by_label: torch.Tensor, log_likelihoods: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``E[eps | x_t] = sum_k p(k | x_t) E[eps | x_t, k]`` with ``p(k | x_t)`` by Bayes' rule
    (``softmax_k(log pi_k + log p_t(x_t | k))``): ``eps_by_label [K, B, D]``, ``log_likelihoods [B, K]``,
    ``weights [K]`` -> ``[B, D]``."""
    posterior = torch.softmax(weights.log()[None] + log_likelihoods, dim=1)       # [B, K]
    return (posterior.T[..., None] * eps_by_label).sum(0)


_SCHEDULE = diffusion.make_schedule("linear", T=1000)


def _null_case(mixture: toy.GaussianMixture2D, x: torch.Tensor, t: int, dtype: torch.dtype = torch.float64) -> tuple:
    """The exact per-label denoisers and noised log-likelihoods of ``mixture`` at ``(x, t)``."""
    x, tt = x.double(), torch.full((x.shape[0],), t)
    noised = mixture.noised(_SCHEDULE.alpha_bars[t].item())
    eps = torch.stack([mixture.eps_fn(_SCHEDULE, y=k)(x, tt) for k in range(mixture.num_classes)])
    log_lik = torch.stack([noised.log_prob(x, y=k) for k in range(mixture.num_classes)], dim=1)
    return eps.to(dtype), log_lik.to(dtype), mixture.weights.to(dtype)


def _null_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    cases = [_null_case(mixture, mixture.noised(_SCHEDULE.alpha_bars[t].item()).sample(64, generator=gen)[0], t)
             for t in (50, 300, 700)]
    return cases + [_null_case(mixture, 40 * torch.randn(16, 2, generator=gen), 50)]   # far from the data


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


EXERCISES = [
    Exercise(name="drop_labels", lesson=LESSON, points=1, public_cases=_drop_public, hidden_cases=_drop_hidden,
             reference=None, compare=_compare_drop_labels, call=_call_drop_labels, tolerance=1.0,
             hint="one independent coin flip per label, drawn from the generator you are given; "
                  "reread the label dropout section"),
    Exercise(name="conditional_eps_fn", lesson=LESSON, points=1,
             public_cases=lambda gen: _conditional_cases(gen, 3, 40), hidden_cases=_conditional_hidden,
             reference=_conditional_reference, call=_call_conditional, tolerance=1e-5,
             hint="the model takes one label per point of the batch; reread the model interface section"),
    Exercise(name="null_eps", lesson=LESSON, points=1, public_cases=_null_public, hidden_cases=_null_hidden,
             reference=_null_eps, tolerance=1e-5,
             hint="the null label's minimiser averages the per-label ones; with which weights, once x_t is seen? "
                  "Work with log-probabilities until the last step: far from the data the likelihoods underflow"),
]


# --------------------------------------------------------------------------- end-of-lesson exercises

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
