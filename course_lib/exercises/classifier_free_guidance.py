"""Exercises of lesson 03 (classifier-free guidance): four graded ones, and what the
end-of-lesson exercises should find.

Graded (hidden cases use what the instant check never shows: ``w = -1`` and ``0``,
``guidance_scale <= 1``, ``t = 0`` and ``T - 1``, a batch of one, another mixture,
a cosine schedule, images):

- ``cfg_eps(eps_cond, eps_uncond, w)``: the CFG prediction (Ho & Salimans 2021, eq. 6).
- ``diffusers_eps(eps_cond, eps_uncond, guidance_scale)``: what a diffusers pipeline computes;
  it runs CFG only when ``guidance_scale > 1`` and the conditional branch alone otherwise.
- ``implicit_grad(model, x, t, y, schedule)``: the implicit classifier's gradient, checked with a
  perfect model (:class:`toy.OracleDenoiser`) against the exact ``grad_x log p_t(y | x_t)``.
- ``cfg_x0_guess(x_t, eps_cond, eps_uncond, alpha_bar, w)``: the denoised guess under CFG, checked
  against the exact posterior means ``(1 + w) E[x0 | x_t, y] - w E[x0 | x_t]`` (Tweedie).

End-of-lesson: :func:`posterior_of_samples`, :func:`interpolation_gap` and
:func:`sampler_baseline_diversity` compute what exercises 1 to 3 ask the student to find.
"""

from __future__ import annotations

import math

import torch

from .. import diffusion, guidance, metrics, tilted, toy
from .core import Exercise, seed_from, tiny_cfg_model

LESSON = "03_classifier_free_guidance"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


# --- cfg_eps ------------------------------------------------------------------------------------

def _cfg(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Ho & Salimans 2021, eq. 6, through :func:`guidance.cfg`."""
    return guidance.cfg(lambda x, t: eps_cond, lambda x, t: eps_uncond, w)(None, None)


def _pair(gen: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(*shape, generator=gen, dtype=dtype), torch.randn(*shape, generator=gen, dtype=dtype)


def _cfg_public(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 50, 2)
    return [(eps_c, eps_u, w) for w in (0.5, 2.0, 4.0)]


def _cfg_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 20, 2)
    w = 0.1 + 8 * torch.rand((), generator=gen).item()
    return [(eps_c, eps_u, -1.0), (eps_c, eps_u, 0.0), (eps_c, eps_u, -0.5), (eps_c, eps_u, w),
            (eps_c[:1], eps_u[:1], 3.0), (*_pair(gen, 2, 1, 28, 28, dtype=torch.float64), w)]


# --- diffusers_eps ------------------------------------------------------------------------------

def _diffusers(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """diffusers' pipelines: ``eps_u + s (eps_c - eps_u)`` when ``s > 1`` (``s = 1 + w``), else ``eps_c`` alone."""
    if guidance_scale > 1:
        return _cfg(eps_cond, eps_uncond, guidance.guidance_scale_to_w(guidance_scale))
    return eps_cond.clone()


def _diffusers_public(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 50, 2)
    return [(eps_c, eps_u, s) for s in (1.5, 3.0, 7.5)]


def _diffusers_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c, eps_u = _pair(gen, 20, 2)
    s = 1.1 + 10 * torch.rand((), generator=gen).item()
    return [(eps_c, eps_u, 0.0), (eps_c, eps_u, 0.5), (eps_c, eps_u, 1.0), (eps_c, eps_u, s),
            (eps_c[:1], eps_u[:1], 2.0), (*_pair(gen, 2, 1, 28, 28, dtype=torch.float64), s)]


# --- implicit_grad ------------------------------------------------------------------------------

def _implicit_reference(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: int,
                        schedule: diffusion.Schedule) -> torch.Tensor:
    """A perfect model: the exact ``grad_x log p_t(y | x_t)`` of its mixture by autograd.
    Any other model: :func:`guidance.implicit_classifier_grad`."""
    if isinstance(model, toy.OracleDenoiser):
        return guidance.classifier_log_prob_grad(model.mixture.log_posterior_fn(schedule), x, t, y)
    K = model.num_classes
    return guidance.implicit_classifier_grad(guidance.model_eps_fn(model, y, K), guidance.model_eps_fn(model, K, K),
                                             x, t, schedule)


def _noised_points(mixture: toy.GaussianMixture2D, t: torch.Tensor, schedule: diffusion.Schedule,
                   gen: torch.Generator) -> torch.Tensor:
    """``x_t`` of points drawn from the mixture, each at its own ``t`` (float64)."""
    x0 = mixture.sample(len(t), generator=gen)[0].double()
    return diffusion.q_sample(x0, t, torch.randn(len(t), 2, generator=gen, dtype=torch.float64), schedule)


def _implicit_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    oracle = toy.OracleDenoiser(mixture, _LINEAR)
    t = torch.randint(100, 900, (40,), generator=gen)
    x = _noised_points(mixture, t, _LINEAR, gen)
    return [(oracle, x, t, y, _LINEAR) for y in range(3)]


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


# --- cfg_x0_guess -------------------------------------------------------------------------------

def _posterior_mean(mixture: toy.GaussianMixture2D, x_t: torch.Tensor, alpha_bar: float, y: int | None):
    """Tweedie: ``E[x0 | x_t (, y)] = (x_t + (1 - a) grad log p_t(x_t (| y))) / sqrt(a)``, exact score."""
    score = mixture.noised(alpha_bar).score(x_t.double(), y)
    return (x_t.double() + (1 - alpha_bar) * score) / math.sqrt(alpha_bar)


def _x0_case(mixture: toy.GaussianMixture2D, y: int, t: int, w: float, n: int, schedule: diffusion.Schedule,
             gen: torch.Generator) -> tuple:
    tt = torch.full((n,), t)
    x_t = _noised_points(mixture, tt, schedule, gen)
    with torch.no_grad():
        eps_c, eps_u = mixture.eps_fn(schedule, y)(x_t, tt), mixture.eps_fn(schedule)(x_t, tt)
    # the mixture and y travel with the case, for the reference only (the answer takes the first five)
    return x_t, eps_c, eps_u, schedule.alpha_bars[t].item(), w, mixture, y


def _x0_call(fn, x_t, eps_cond, eps_uncond, alpha_bar, w, mixture, y):
    return fn(x_t, eps_cond, eps_uncond, alpha_bar, w)


def _x0_reference(x_t, eps_cond, eps_uncond, alpha_bar, w, mixture, y) -> torch.Tensor:
    return (1 + w) * _posterior_mean(mixture, x_t, alpha_bar, y) - w * _posterior_mean(mixture, x_t, alpha_bar, None)


def _x0_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_x0_case(mixture, 1, t, w, 40, _LINEAR, gen) for t, w in ((200, 1.0), (500, 3.0), (800, 2.0))]


def _x0_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, other = toy.anisotropic(), toy.unequal_weights()
    t = int(torch.randint(1, 999, (), generator=gen))
    return [_x0_case(aniso, 1, t, -1.0, 20, _LINEAR, gen), _x0_case(aniso, 0, t, 0.0, 20, _LINEAR, gen),
            _x0_case(aniso, 2, 0, 2.0, 20, _LINEAR, gen), _x0_case(aniso, 1, 999, 4.0, 20, _LINEAR, gen),
            _x0_case(aniso, 1, t, 6.5, 1, _LINEAR, gen), _x0_case(other, 2, t, 1.5, 20, _COSINE, gen)]


EXERCISES = [
    Exercise(name="cfg_eps", lesson=LESSON, points=1, public_cases=_cfg_public, hidden_cases=_cfg_hidden,
             reference=_cfg, tolerance=1e-5,
             hint="reread section 2: which weight gives the unconditional model, which the conditional one?"),
    Exercise(name="diffusers_eps", lesson=LESSON, points=1, public_cases=_diffusers_public,
             hidden_cases=_diffusers_hidden, reference=_diffusers, tolerance=1e-5,
             hint="reread section 2: how guidance_scale relates to w, and what diffusers does at guidance_scale <= 1"),
    Exercise(name="implicit_grad", lesson=LESSON, points=2, public_cases=_implicit_public,
             hidden_cases=_implicit_hidden, reference=_implicit_reference, tolerance=1e-5,
             hint="section 3: Bayes' rule turns the two predictions into a classifier's gradient; mind the sign, "
                  "and every point has its own noise level"),
    Exercise(name="cfg_x0_guess", lesson=LESSON, points=2, public_cases=_x0_public, hidden_cases=_x0_hidden,
             reference=_x0_reference, call=_x0_call, tolerance=1e-5,
             hint="lesson 0's denoised guess, computed from the noise prediction that CFG actually uses"),
]


# --- what the end-of-lesson exercises should find ----------------------------------------------

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
