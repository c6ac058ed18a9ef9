"""Instructor half of the exercises of explicit_conditioning: references, hidden cases, what each tests."""

from __future__ import annotations

import functools

import torch

from course_lib import guidance, toy
from course_lib.exercises.explicit_conditioning import _COSINE, _SCHEDULE, _null_case
from .core import Grading


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


def _noisy_label_eps(eps_by_label: torch.Tensor, log_likelihoods: torch.Tensor, weights: torch.Tensor, flip: float,
                     y: int) -> torch.Tensor:
    """The minimiser of the conditional DDPM loss for the stored label ``y`` when each true label was replaced,
    with probability ``flip``, by one of the other ``K - 1`` labels drawn uniformly: ``E[eps | x_t, stored y] =
    sum_k p(k | x_t, stored y) E[eps | x_t, k]`` with ``p(k | x_t, stored y) ∝ pi_k p_t(x_t | k) q(y | k)``,
    ``q(y | y) = 1 - flip``, ``q(y | k != y) = flip / (K - 1)``."""
    K = weights.shape[0]
    q = torch.full((K,), flip / (K - 1), dtype=torch.float64)
    q[y] = 1 - flip
    log_q = torch.where(q > 0, q.clamp_min(1e-300).log(), torch.full_like(q, -torch.inf))
    logits = weights.double().log()[None] + log_q[None] + log_likelihoods.double()
    posterior = torch.softmax(logits, dim=1)                                          # [B, K]
    return (posterior.T[..., None] * eps_by_label.double()).sum(0).to(eps_by_label.dtype)


def _noisy_hidden(gen: torch.Generator) -> list[tuple]:
    ring, unequal, lesson = toy.ring(k=6), toy.unequal_weights(), toy.anisotropic()
    t = int(torch.randint(1, 999, (1,), generator=gen))
    near = lambda m, t, n: m.noised(_SCHEDULE.alpha_bars[t].item()).sample(n, generator=gen)[0]  # noqa: E731
    return [(*_null_case(lesson, near(lesson, 200, 32), 200), 0.0, 1),              # clean labels: the conditional
            (*_null_case(lesson, near(lesson, 200, 32), 200), 2 / 3, 1),            # uninformative: the null label
            (*_null_case(lesson, near(lesson, 200, 32), 200), 1.0, 0),              # always wrong: "not class 0"
            (*_null_case(ring, near(ring, t, 32), t), 0.3, 4),                      # six classes
            (*_null_case(unequal, near(unequal, 0, 32), 0), 0.15, 2),               # unequal weights, t = 0
            (*_null_case(unequal, near(unequal, t, 1), t), 0.4, 1),                 # batch of one
            (*_null_case(unequal, near(unequal, t, 32), t, torch.float32), 0.25, 0),  # float32
            (*_null_case(lesson, 25 * torch.randn(8, 2, generator=gen), 0), 0.05, 1)]  # far from the data, t = 0


def _gaussian_loss_floor(cov: torch.Tensor, alpha_bars: torch.Tensor) -> torch.Tensor:
    """The least DDPM loss (mean over the ``D`` coordinates) at each level for data ``N(mu, cov)``:
    ``E|eps - E[eps | x_t]|^2 / D = tr(I - sigma^2 C_t^-1) / D = tr(a cov C_t^-1) / D``, ``C_t = a cov + sigma^2 I``."""
    D, ab = cov.shape[0], alpha_bars.double()
    eye = torch.eye(D, dtype=torch.float64)
    c_t = ab[:, None, None] * cov.double()[None] + (1 - ab)[:, None, None] * eye
    inner = ab[:, None, None] * torch.linalg.solve(c_t, cov.double()[None].expand_as(c_t))
    return (inner.diagonal(dim1=1, dim2=2).sum(-1) / D).to(alpha_bars.dtype)


def _floor_hidden(gen: torch.Generator) -> list[tuple]:
    a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    cov3 = a @ a.T + 0.1 * torch.eye(3, dtype=torch.float64)                        # three dimensions
    thin = torch.tensor([[1.0, 0.0], [0.0, 1e-4]], dtype=torch.float64)             # almost a line
    return [(toy.ring(k=4).covs[0].clone(), _SCHEDULE.alpha_bars[::9].clone()),       # isotropic
            (thin, _COSINE.alpha_bars.clone()),                                       # nearly singular, to T - 1
            (cov3, _SCHEDULE.alpha_bars[::31].clone()),
            (toy.anisotropic().covs[1].clone(), torch.tensor([1.0], dtype=torch.float64)),  # clean data: floor 1
            (toy.anisotropic().covs[0].clone(), _SCHEDULE.alpha_bars[[400]].clone()),       # one level
            (toy.anisotropic().covs[2].float(), _SCHEDULE.alpha_bars[::17].float())]        # float32


@functools.lru_cache(maxsize=None)
def _brief_twin(fraction: float, p_uncond: float, label: int = 1) -> dict:
    """Lesson 01, section 5: the shipped toy recipe shortened to 2,000 steps of 256, trained from the
    same initial weights and random numbers on section 5's 20,000 pairs with class ``label`` thinned
    to ``fraction`` (``1.0``: the balanced twin); returns ``sample_metrics.fit_by_class`` of its samples
    (DDIM, 100 steps, eta = 0, seed 100) for every label and the null label. Cached: each twin trains once."""
    from course_lib import conditional, data, models, pretrained, recipes, sample_metrics, training

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
    fits = sample_metrics.fit_by_class(samples, toy.anisotropic(), seed=200)
    fits["examples"] = int((y == label).sum())
    return fits


def expected_rare_sweep(fractions: tuple[float, ...] = (0.2, 0.06, 0.02, 0.006),
                        label: int = 1) -> dict[float, tuple[int, float, float]]:
    """Lesson 01, exercise 1: ``{fraction: (examples kept, SW of class label, SW of the null label)}``,
    and ``1.0`` for the balanced twin."""
    from course_lib import pretrained, recipes

    p_uncond, out = recipes.ToyCFGConfig(**pretrained.load("toy_cfg").meta["config"]).p_uncond, {}
    for fraction in (1.0, *fractions):
        fits = _brief_twin(fraction, p_uncond, label)
        out[fraction] = (fits["examples"], fits[label].sw, fits[3].sw)
    return out


def expected_self_consistency(ts: tuple[int, ...] = tuple(range(0, 1000, 50)), n: int = 2000) -> dict[int, float]:
    """Lesson 01, exercise 2: ``{t: relative error}`` of the shipped network's null prediction against
    the posterior-weighted sum of its own conditional predictions (exact likelihoods), at ``n`` points
    of the noised mixture (seed ``60 + t``)."""
    from course_lib import pretrained, sample_metrics

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
        out[t] = sample_metrics.relative_error(own_null, _null_eps(per_label, log_lik, mixture.weights))
    return out


def expected_dropout(p_unconds: tuple[float, ...] = (0.0, 0.2, 0.5)) -> dict[float, dict[int, tuple[float, float]]]:
    """Lesson 01, exercise 3: ``{p_uncond: {label: (SW, floor)}}`` of balanced twins trained with each
    ``p_uncond`` (label 3: the null label against ``p(x)``)."""
    return {p: {k: (_brief_twin(1.0, p)[k].sw, _brief_twin(1.0, p)[k].floor) for k in range(4)} for p in p_unconds}


GRADING = [
    Grading(name="null_eps", reference=_null_eps, hidden_cases=_null_hidden,
            understanding="the null label's minimiser E[eps | x_t] is the average of the per-label ones weighted by "
                          "the posterior p(k | x_t) from Bayes' rule (weights times noised likelihoods), in log space",
            shortcut="the mixture's eps_fn and posterior (and OracleDenoiser) are twins; the lesson states that the "
                     "weights depend on x_t but displays neither the posterior nor the weighted sum"),
    Grading(name="noisy_label_eps", reference=_noisy_label_eps, hidden_cases=_noisy_hidden,
            understanding="the conditional minimiser is E[eps | what the network is shown]: with flipped labels the "
                          "stored label is one more piece of evidence, p(k | x_t, y) ∝ pi_k p_t(x_t | k) q(y | k)",
            shortcut="no library function models label noise; null_eps of the lesson is the special case "
                     "flip = (K-1)/K, and the hidden cases include flip 0 and 1 and other mixtures"),
    Grading(name="gaussian_loss_floor", reference=_gaussian_loss_floor, hidden_cases=_floor_hidden,
            understanding="what the DDPM loss cannot go below: the conditional variance of eps given x_t, "
                          "tr(a S (a S + sigma^2 I)^-1) / D for Gaussian data, per noise level",
            shortcut="no library function computes a loss floor; the lesson measures floors by Monte Carlo only "
                     "(off by ~1e-2) and displays no conditional variance"),
]
