"""Instructor half of the exercises of classifier_free_guidance: references, hidden cases, what each tests."""

from __future__ import annotations

import math
import torch
from course_lib import diffusion, guidance, metrics, tilted, toy
from course_lib.exercises.core import Exercise, seed_from, tiny_cfg_model
from course_lib.exercises.classifier_free_guidance import _COSINE, _LINEAR, _noised_points, _pair, _x0_case
from .core import Grading


def _cfg(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Ho & Salimans 2021, eq. 6, through :func:`guidance.cfg`."""
    return guidance.cfg(lambda x, t: eps_cond, lambda x, t: eps_uncond, w)(None, None)


def _cfg_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 20, 2)
    w = 0.1 + 8 * torch.rand((), generator=gen).item()
    return [(eps_c, eps_u, -1.0), (eps_c, eps_u, 0.0), (eps_c, eps_u, -0.5), (eps_c, eps_u, w),
            (eps_c[:1], eps_u[:1], 3.0), (*_pair(gen, 2, 1, 28, 28, dtype=torch.float64), w)]


def _diffusers(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """diffusers' pipelines: ``eps_u + s (eps_c - eps_u)`` when ``s > 1`` (``s = 1 + w``), else ``eps_c`` alone."""
    if guidance_scale > 1:
        return _cfg(eps_cond, eps_uncond, guidance.guidance_scale_to_w(guidance_scale))
    return eps_cond.clone()


def _diffusers_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 20, 2)
    s = 1.1 + 10 * torch.rand((), generator=gen).item()
    return [(eps_c, eps_u, 0.0), (eps_c, eps_u, 0.5), (eps_c, eps_u, 1.0), (eps_c, eps_u, s),
            (eps_c[:1], eps_u[:1], 2.0), (*_pair(gen, 2, 1, 28, 28, dtype=torch.float64), s)]


def _implicit_reference(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: int,
                        schedule: diffusion.Schedule) -> torch.Tensor:
    """A perfect model: the exact ``grad_x log p_t(y | x_t)`` of its mixture by autograd.
    Any other model: :func:`guidance.implicit_classifier_grad`."""
    if isinstance(model, toy.OracleDenoiser):
        return guidance.classifier_log_prob_grad(model.mixture.log_posterior_fn(schedule), x, t, y)
    K = model.num_classes
    return guidance.implicit_classifier_grad(guidance.model_eps_fn(model, y, K), guidance.model_eps_fn(model, K, K),
                                             x, t, schedule)


def _implicit_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, other = toy.anisotropic(), toy.unequal_weights()
    t = torch.randint(1, 999, (30,), generator=gen)
    edges = torch.tensor([0, 0, 999, 999])
    model = tiny_cfg_model(seed_from(gen), 4)
    return [(toy.OracleDenoiser(aniso, _LINEAR), _noised_points(aniso, edges, _LINEAR, gen), edges, 1, _LINEAR),
            (toy.OracleDenoiser(aniso, _LINEAR), _noised_points(aniso, t[:1], _LINEAR, gen), t[:1], 2, _LINEAR),
            (toy.OracleDenoiser(other, _LINEAR), _noised_points(other, t, _LINEAR, gen), t, 0, _LINEAR),
            (toy.OracleDenoiser(other, _COSINE), _noised_points(other, t, _COSINE, gen), t, 2, _COSINE),
            (model, torch.randn(30, 2, generator=gen), t, 3, _LINEAR)]


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


def posterior_of_samples(mixture: toy.GaussianMixture2D, y: int, w: float, schedule: diffusion.Schedule, *,
                         n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Exercise 1: the mean exact posterior ``p(y | x)`` of samples of the tilted density ``p_w``
    and of a perfect model's CFG samples (ancestral DDPM), ``(tilted, cfg)``. For ``w > 0``
    the CFG samples are "more class y" than ``p_w``, although ``p_w`` is what the tilt asks for."""
    target = tilted.TiltedDensity(mixture, y, w)
    tilt = target.sample(n, generator=torch.Generator().manual_seed(seed))
    fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
    cfg = diffusion.sample(fn, (n, 2), schedule, generator=torch.Generator().manual_seed(seed + 1))
    return (float(mixture.posterior(tilt.double())[:, y].mean()), float(mixture.posterior(cfg.double())[:, y].mean()))


def interpolation_gap(mixture: toy.GaussianMixture2D, y: int, w: float, schedule: diffusion.Schedule, *,
                      n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Exercise 2: ``(SW between a perfect model's CFG samples (DDPM) and samples of p_w, SW noise floor
    of p_w)`` for ``-1 < w < 0``. The first is many times the second: CFG does not sample
    ``p(x | y)^(1+w) p(x)^(-w)`` when it interpolates either."""
    if not -1 < w < 0:
        raise ValueError(f"w must lie strictly between -1 and 0 (interpolation), got {w!r}")
    target = tilted.TiltedDensity(mixture, y, w)
    a, b = (target.sample(n, generator=torch.Generator().manual_seed(seed + i)) for i in (0, 1))
    fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
    cfg = diffusion.sample(fn, (n, 2), schedule, generator=torch.Generator().manual_seed(seed + 2))
    return metrics.sliced_wasserstein(cfg, a), metrics.sliced_wasserstein(a, b)


def sampler_baseline_diversity(mixture: toy.GaussianMixture2D, y: int, schedule: diffusion.Schedule,
                               steps: tuple[int | None, ...] = (10, 20, 50, 200, None), *, n: int = 2000,
                               seed: int = 0) -> dict[str, float]:
    """Exercise 3: mean pairwise distance of samples of ``p(x | y)`` drawn with the exact score at
    ``w = 0`` by deterministic DDIM with each number of ``steps`` (``None``: ancestral DDPM over all
    ``T``), all from the same ``x_T``, and of exact samples (key ``"exact"``). Few-step DDIM
    shrinks the class; the diversity rises towards the exact value as the steps grow."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    fn = mixture.eps_fn(schedule, y)
    out = {}
    for k in steps:
        kwargs = dict(steps=None, generator=torch.Generator().manual_seed(seed + 1)) if k is None \
            else dict(steps=k, eta=0.0)
        out["DDPM" if k is None else f"DDIM {k}"] = metrics.mean_pairwise_distance(
            diffusion.sample(fn, (n, 2), schedule, x_T=x_T, **kwargs))
    out["exact"] = metrics.mean_pairwise_distance(
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


GRADING = [
    Grading(name="cfg_eps", reference=_cfg, hidden_cases=_cfg_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="diffusers_eps", reference=_diffusers, hidden_cases=_diffusers_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="implicit_grad", reference=_implicit_reference, hidden_cases=_implicit_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="cfg_x0_guess", reference=_x0_reference, hidden_cases=_x0_hidden,
            understanding="TODO", shortcut="TODO"),
]
