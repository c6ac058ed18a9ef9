"""Instructor half of lesson 03's exercises: references, hidden cases, what each tests; and what the
end-of-lesson exercises should find."""

from __future__ import annotations

import math

import torch

from course_lib import diffusion, guidance, sample_metrics, tilted, toy
from course_lib.exercises.classifier_free_guidance import _COSINE, _LINEAR, _noised_points, _score_1d_case, _x0_case
from course_lib.exercises.core import seed_from, tiny_cfg_model

from .core import Grading


# --- implicit_log_odds --------------------------------------------------------------------------


def _log_odds_reference(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: int, y_other: int,
                        schedule: diffusion.Schedule) -> torch.Tensor:
    """A perfect model: the exact ``grad_x [log p_t(y | x_t) - log p_t(y_other | x_t)]`` of its mixture by
    autograd. Any other model: what Bayes' rule gives on its predictions, ``(eps(y_other) - eps(y)) / sigma_t``."""
    if isinstance(model, toy.OracleDenoiser):
        log_post = model.mixture.log_posterior_fn(schedule)
        return (guidance.classifier_log_prob_grad(log_post, x, t, y)
                - guidance.classifier_log_prob_grad(log_post, x, t, y_other))
    K = model.num_classes
    return guidance.implicit_classifier_grad(guidance.model_eps_fn(model, y, K),
                                             guidance.model_eps_fn(model, y_other, K), x, t, schedule)


def _log_odds_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, other = toy.anisotropic(), toy.unequal_weights()
    t = torch.randint(1, 999, (30,), generator=gen)
    edges = torch.tensor([0, 0, 999, 999])
    model = tiny_cfg_model(seed_from(gen), 4)
    return [(toy.OracleDenoiser(aniso, _LINEAR), _noised_points(aniso, edges, _LINEAR, gen), edges, 1, 2, _LINEAR),
            (toy.OracleDenoiser(aniso, _LINEAR), _noised_points(aniso, t[:1], _LINEAR, gen), t[:1], 2, 0, _LINEAR),
            (toy.OracleDenoiser(aniso, _LINEAR), _noised_points(aniso, t, _LINEAR, gen), t, 1, 1, _LINEAR),  # zero
            (toy.OracleDenoiser(other, _LINEAR), _noised_points(other, t, _LINEAR, gen), t, 0, 2, _LINEAR),
            (toy.OracleDenoiser(other, _COSINE), _noised_points(other, t, _COSINE, gen), t, 2, 1, _COSINE),
            (model, torch.randn(30, 2, generator=gen), t, 3, 0, _LINEAR)]


# --- cfg_x0_guess -------------------------------------------------------------------------------


def _posterior_mean(mixture: toy.GaussianMixture2D, x_t: torch.Tensor, alpha_bar: float, y: int | None):
    """Tweedie: ``E[x0 | x_t (, y)] = (x_t + (1 - a) grad log p_t(x_t (| y))) / sqrt(a)``, exact score."""
    score = mixture.noised(alpha_bar).score(x_t.double(), y)
    return (x_t.double() + (1 - alpha_bar) * score) / math.sqrt(alpha_bar)


def _x0_reference(x_t, eps_cond, eps_uncond, alpha_bar, w, mixture, y) -> torch.Tensor:
    return (1 + w) * _posterior_mean(mixture, x_t, alpha_bar, y) - w * _posterior_mean(mixture, x_t, alpha_bar, None)


def _x0_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, other = toy.anisotropic(), toy.unequal_weights()
    t = int(torch.randint(1, 999, (), generator=gen))
    return [_x0_case(aniso, 1, t, -1.0, 20, _LINEAR, gen), _x0_case(aniso, 0, t, 0.0, 20, _LINEAR, gen),
            _x0_case(aniso, 2, 0, 2.0, 20, _LINEAR, gen), _x0_case(aniso, 1, 999, 4.0, 20, _LINEAR, gen),
            _x0_case(aniso, 1, t, 6.5, 1, _LINEAR, gen), _x0_case(other, 2, t, 1.5, 20, _COSINE, gen)]


# --- cfg_score_1d -------------------------------------------------------------------------------


def _score_1d_reference(x, means, var, weights, y, w, alpha_bar) -> torch.Tensor:
    """The 1-D mixture as a 2-D one on the line ``x_2 = 0`` (isotropic components, so the first coordinate of
    the 2-D score is the 1-D score), noised exactly, combined as CFG combines scores."""
    mixture = toy.GaussianMixture2D(torch.stack([means, torch.zeros_like(means)], dim=1),
                                    var * torch.eye(2, dtype=torch.float64).expand(2, 2, 2), weights)
    noised = mixture.noised(alpha_bar)
    points = torch.stack([x.double(), torch.zeros_like(x, dtype=torch.float64)], dim=1)
    return ((1 + w) * noised.score(points, y) - w * noised.score(points))[:, 0]


def _score_1d_hidden(gen: torch.Generator) -> list[tuple]:
    return [_score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 1, 2.0, 1.0),           # t = 0: the tilt itself
            _score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 1, 2.0, 1e-4),          # nearly pure noise
            _score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 0, -1.0, 0.5),          # unconditional
            _score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 0, 0.0, 0.5),           # conditional
            _score_1d_case(gen, (2.0, -0.5), 1.5, (0.9, 0.1), 1, 4.0, 0.7),           # a rare class, wide ones
            _score_1d_case(gen, (0.0, 0.3), 0.05, (0.4, 0.6), 0, 1.0, 0.95, n=1),     # close, narrow; one point
            _score_1d_case(gen, (-3.0, 3.0), 0.3, (0.5, 0.5), 1, 6.0, 0.2, dtype=torch.float32)]


GRADING = [
    Grading(name="implicit_log_odds", reference=_log_odds_reference, hidden_cases=_log_odds_hidden,
            understanding="Bayes' rule on noise predictions: in log p_t(y|x_t) - log p_t(y'|x_t) the marginal and the "
                          "null label cancel, leaving (eps(y') - eps(y)) / sigma_t with each point's own sigma_t",
            shortcut="the lesson shows only the score form with the null label; the library's implicit-classifier "
                     "and classifier-gradient functions are twins, and the hidden cases use a network that is "
                     "no mixture (so the oracle's mixture cannot be differentiated instead)"),
    Grading(name="cfg_x0_guess", reference=_x0_reference, hidden_cases=_x0_hidden,
            understanding="Tweedie's denoised guess is affine in eps, so CFG's eps gives the CFG combination of the "
                          "exact posterior means; checked against E[x0|x_t, y] and E[x0|x_t], not against a formula",
            shortcut="no cell shows x0-hat under CFG; guidance.cfg is a twin, and the reference is built from the "
                     "exact posterior means, so only the right guess at the right alpha_bar passes"),
    Grading(name="cfg_score_1d", reference=_score_1d_reference, hidden_cases=_score_1d_hidden,
            understanding="CFG tilts the noised densities: each component becomes N(sqrt(a) m, a v + 1 - a), the class "
                          "posterior a logistic function, and the score (1+w) s(x|y) - w s(x) of those noised laws",
            shortcut="the lesson gives the t = 0 tilt's score only in words of p(x|y) and p(x); the library's mixture "
                     "scores and the tilted density are twins, and the hidden cases at a = 1, a -> 0, w = -1, 0 "
                     "catch an un-noised variance or a swapped weight"),
]


# --- what the end-of-lesson exercises should find ----------------------------------------------


def posterior_of_samples(mixture: toy.GaussianMixture2D, y: int, w: float, schedule: diffusion.Schedule, *,
                         n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Exercise 1: the mean exact posterior ``p(y | x)`` of samples of the tilted density ``p_w``
    and of a perfect model's CFG samples (ancestral DDPM), ``(tilted, cfg)``."""
    target = tilted.TiltedDensity(mixture, y, w)
    tilt = target.sample(n, generator=torch.Generator().manual_seed(seed))
    fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
    cfg = diffusion.sample(fn, (n, 2), schedule, generator=torch.Generator().manual_seed(seed + 1))
    return (float(mixture.posterior(tilt.double())[:, y].mean()), float(mixture.posterior(cfg.double())[:, y].mean()))


def interpolation_gap(mixture: toy.GaussianMixture2D, y: int, w: float, schedule: diffusion.Schedule, *,
                      n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Exercise 2: ``(SW between a perfect model's CFG samples (DDPM) and samples of p_w, SW noise floor
    of p_w)`` for ``-1 < w < 0``."""
    if not -1 < w < 0:
        raise ValueError(f"w must lie strictly between -1 and 0 (interpolation), got {w!r}")
    target = tilted.TiltedDensity(mixture, y, w)
    a, b = (target.sample(n, generator=torch.Generator().manual_seed(seed + i)) for i in (0, 1))
    fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
    cfg = diffusion.sample(fn, (n, 2), schedule, generator=torch.Generator().manual_seed(seed + 2))
    return sample_metrics.sliced_wasserstein(cfg, a), sample_metrics.sliced_wasserstein(a, b)


def sampler_baseline_diversity(mixture: toy.GaussianMixture2D, y: int, schedule: diffusion.Schedule,
                               steps: tuple[int | None, ...] = (10, 20, 50, 200, None), *, n: int = 2000,
                               seed: int = 0) -> dict[str, float]:
    """Exercise 3: mean pairwise distance of samples of ``p(x | y)`` drawn with the exact score at
    ``w = 0`` by deterministic DDIM with each number of ``steps`` (``None``: ancestral DDPM over all
    ``T``), all from the same ``x_T``, and of exact samples (key ``"exact"``)."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    fn = mixture.eps_fn(schedule, y)
    out = {}
    for k in steps:
        kwargs = dict(steps=None, generator=torch.Generator().manual_seed(seed + 1)) if k is None \
            else dict(steps=k, eta=0.0)
        out["DDPM" if k is None else f"DDIM {k}"] = sample_metrics.mean_pairwise_distance(
            diffusion.sample(fn, (n, 2), schedule, x_T=x_T, **kwargs))
    out["exact"] = sample_metrics.mean_pairwise_distance(
        mixture.sample(n, y=y, generator=torch.Generator().manual_seed(seed + 2))[0])
    return out


@torch.no_grad()
def zero_shot_accuracy(model: torch.nn.Module, schedule: diffusion.Schedule, x0: torch.Tensor, y: torch.Tensor, *,
                       ts: tuple[int, ...] = (100, 300, 500, 700), draws: int = 2, seed: int = 0) -> dict:
    """Exercise 4: a conditional network as a classifier (Li et al. 2023): noise each image at every
    ``t`` in ``ts`` with ``draws`` noise draws, score label ``k`` by the mean ``||eps - eps_theta(x_t, t, k)||^2``
    (the same ``t`` and noise for every label) and predict the label of least error. Returns the accuracy
    from each ``t`` alone (keys ``t``) and from all of them together (key ``"all"``)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or x0.shape[0] != y.shape[0]:
        raise ValueError("x0 [B, ...] and y [B] must hold one label per image")
    gen = torch.Generator().manual_seed(seed)
    errors = {}
    for t in ts:
        tt, total = torch.full((len(y),), t), 0.0
        for _ in range(draws):
            eps = torch.randn(x0.shape, generator=gen)
            x_t = diffusion.q_sample(x0, tt, eps, schedule).float()
            total = total + torch.stack([((model(x_t, tt, torch.full_like(y, k)) - eps) ** 2).flatten(1).mean(1)
                                         for k in range(model.num_classes)], dim=1)
        errors[t] = total
    out: dict = {t: float((e.argmin(1) == y).double().mean()) for t, e in errors.items()}
    out["all"] = float((sum(errors.values()).argmin(1) == y).double().mean())
    return out
