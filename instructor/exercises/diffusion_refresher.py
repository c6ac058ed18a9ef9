"""Instructor half of the exercises of diffusion_refresher: references, hidden cases, what each tests."""

from __future__ import annotations

import torch
import math

from course_lib import diffusion, sample_metrics, toy
from course_lib.exercises.diffusion_refresher import _COSINE, _LINEAR, _gaussian_case, _points
from .core import Grading


def _renoise(x_s: torch.Tensor, alpha_bar_s: float, alpha_bar_t: float, eps: torch.Tensor) -> torch.Tensor:
    """Noise ``x_s`` further to a level ``alpha_bar_t <= alpha_bar_s``: the forward chain's steps compose into
    ``q(x_t | x_s) = N(sqrt(a_t / a_s) x_s, (1 - a_t / a_s) I)`` (DDPM eq. 4 applied from ``s``, not from 0)."""
    ratio = alpha_bar_t / alpha_bar_s
    return ratio**0.5 * x_s + (1 - ratio) ** 0.5 * eps


def _bayes_accuracy(mu: float, std: float, weight: float, alpha_bars: torch.Tensor) -> torch.Tensor:
    """The accuracy of the Bayes classifier of ``x_t`` for clean classes ``y = 0: N(-mu, std^2)`` and
    ``y = 1: N(mu, std^2)`` with ``p(y = 1) = weight``, at each signal level: ``x_t | y ~ N(+-a mu, v)`` with
    ``a = sqrt(alpha_bar)``, ``v = alpha_bar std^2 + 1 - alpha_bar``; the rule says 1 above
    ``c = v log((1 - weight) / weight) / (2 a mu)``, so the accuracy is
    ``weight Phi((a mu - c) / sqrt v) + (1 - weight) Phi((c + a mu) / sqrt v)``."""
    ab = alpha_bars.double()
    a, v = ab.sqrt(), ab * std**2 + 1 - ab
    c = v * math.log((1 - weight) / weight) / (2 * a * mu)
    acc = weight * torch.special.ndtr((a * mu - c) / v.sqrt()) + (1 - weight) * torch.special.ndtr((c + a * mu) / v.sqrt())
    return acc.to(alpha_bars.dtype)


def _accuracy_hidden(gen: torch.Generator) -> list[tuple]:
    mu, std = 0.5 + 2 * torch.rand((), generator=gen).item(), 0.2 + torch.rand((), generator=gen).item()
    weight = 0.1 + 0.8 * torch.rand((), generator=gen).item()
    return [(mu, std, weight, _LINEAR.alpha_bars[::7].clone()),                    # random classes, weights
            (mu, std, 0.9, _COSINE.alpha_bars.clone()),                             # one class rare, cosine to T - 1
            (1.0, 0.05, 0.5, _LINEAR.alpha_bars[:300].clone()),                     # nearly separable when clean
            (mu, std, weight, torch.tensor([1.0], dtype=torch.float64)),            # clean data, one level
            (mu, std, 0.5, _LINEAR.alpha_bars[[500]].clone()),                      # batch of one
            (mu, std, weight, _LINEAR.alpha_bars[::13].float())]                    # float32 levels


def _ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_s: float) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, eq. 12, eta = 0), as :func:`diffusion.ddim_step` with ``eta=0``."""
    x0 = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    return alpha_bar_s**0.5 * x0 + (1 - alpha_bar_s) ** 0.5 * eps


def _gaussian_eps(x_t: torch.Tensor, alpha_bar: float, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Tweedie: ``E[eps | x_t] = -sigma_t grad log N(x_t; sqrt(a) mean, a cov + (1 - a) I)`` for data
    ``N(mean, cov)``, ``a = alpha_bar``: the exact denoiser of a one-component :class:`toy.GaussianMixture2D`."""
    noised = toy.GaussianMixture2D(mean[None], cov[None], [1.0]).noised(alpha_bar)
    return (-(1 - alpha_bar) ** 0.5 * noised.score(x_t)).to(x_t.dtype)


def _random_gaussian(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean in [-2, 2]^2 and a covariance with random axes and standard deviations in [0.2, 1.5]."""
    mean = 4 * torch.rand(2, generator=gen, dtype=torch.float64) - 2
    angle = torch.rand((), generator=gen, dtype=torch.float64) * torch.pi
    c, s = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    stds = 0.2 + 1.3 * torch.rand(2, generator=gen, dtype=torch.float64)
    return mean, rot @ torch.diag(stds**2) @ rot.T


def _gaussian_hidden(gen: torch.Generator) -> list[tuple]:
    (m1, c1), (m2, c2) = _random_gaussian(gen), _random_gaussian(gen)    # Gaussians the public check never shows
    t = int(torch.randint(1, 999, (1,), generator=gen))
    return [_gaussian_case(gen, m1, c1, 0, 32), _gaussian_case(gen, m1, c1, 999, 32),   # t = 0, t = T - 1
            _gaussian_case(gen, m2, c2, t, 1),                                          # batch of one
            _gaussian_case(gen, m2, c2, t, 16, torch.float32)]                         # float32 points


def _renoise_hidden(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen)
    x64, e64 = _points(gen, 16, torch.float64)
    s, t = sorted(torch.randint(1, 999, (2,), generator=gen).tolist())
    return ([(x, 1.0, _LINEAR.alpha_bars[t].item(), eps),                                # from clean data
             (x, _LINEAR.alpha_bars[s].item(), _LINEAR.alpha_bars[s].item(), eps),       # no step: x_s itself
             (x, _LINEAR.alpha_bars[s].item(), _LINEAR.alpha_bars[999].item(), eps),     # to t = T - 1
             (x, _LINEAR.alpha_bars[s].item(), _LINEAR.alpha_bars[t].item(), eps)]       # random
            + [(x[:1], _COSINE.alpha_bars[s].item(), _COSINE.alpha_bars[t].item(), eps[:1]),   # batch of one, cosine
               (x64, _LINEAR.alpha_bars[s].item(), _LINEAR.alpha_bars[t].item(), e64),         # float64
               (torch.randn(2, 1, 4, 4, generator=gen), 0.8, 0.3, torch.randn(2, 1, 4, 4, generator=gen))])  # images


def _ddim_hidden(gen: torch.Generator) -> list[tuple]:
    x, eps = _points(gen, 32, torch.float64)
    t, s = sorted(torch.randint(0, 1000, (2,), generator=gen).tolist(), reverse=True)
    return ([(x, eps, _LINEAR.alpha_bars[a].item(), _LINEAR.alpha_bars[b].item())
             for a, b in ((1, 0), (999, 0), (t, s), (t, t))]                            # last step, one jump, random, none
            + [(x[:1], eps[:1], _COSINE.alpha_bars[t].item(), _COSINE.alpha_bars[s].item()),  # batch of one, cosine
               (x.float(), eps.float(), _LINEAR.alpha_bars[500].item(), _LINEAR.alpha_bars[480].item())])  # float32


def _oracle_rows(schedule: diffusion.Schedule, samplers: dict[str, dict], n: int = 2000) -> dict[str, tuple[float, float]]:
    """``{name: (SW to p_0, mean pairwise distance)}`` of the exact denoiser of ``toy.anisotropic()``
    under each sampler, with lesson 00's seeds (``x_T`` seed 7, sampler seed 8, reference seed 1)."""
    mixture = toy.anisotropic()
    reference = mixture.sample(n, generator=torch.Generator().manual_seed(1))[0]
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(7))
    rows = {}
    for name, kwargs in samplers.items():
        x = diffusion.sample(mixture.eps_fn(schedule), (n, 2), schedule, x_T=x_T,
                             generator=torch.Generator().manual_seed(8), **kwargs)
        rows[name] = (sample_metrics.sliced_wasserstein(x, reference), sample_metrics.mean_pairwise_distance(x))
    return rows


def expected_eta_sweep(steps: tuple[int, ...] = (20, 50),
                       etas: tuple[float, ...] = (0.0, 0.5, 1.0)) -> dict[tuple[int, float], tuple[float, float]]:
    """Lesson 00, exercise 1: ``{(steps, eta): (SW, spread)}`` of DDIM with the exact denoiser."""
    samplers = {(k, eta): dict(steps=k, eta=eta) for k in steps for eta in etas}
    rows = _oracle_rows(diffusion.make_schedule("linear", T=1000), {str(key): kw for key, kw in samplers.items()})
    return {key: rows[str(key)] for key in samplers}


def expected_schedule_rows(kind: str) -> dict[str, tuple[float, float]]:
    """Lesson 00, exercise 2: ``{sampler: (SW, spread)}`` of the exact denoiser under schedule ``kind``
    for DDPM and DDIM with 50, 20 and 10 steps (section 3's oracle rows)."""
    samplers = {"DDPM, 1000 steps": dict(steps=None), "DDIM, 50 steps": dict(steps=50, eta=0.0),
                "DDIM, 20 steps": dict(steps=20, eta=0.0), "DDIM, 10 steps": dict(steps=10, eta=0.0)}
    return _oracle_rows(diffusion.make_schedule(kind, T=1000), samplers)


def expected_identity_step(label: int = 1, tolerance: float = 0.05) -> int:
    """Lesson 00, exercise 3: the first step ``t`` of the linear schedule at which the exact
    denoiser of class ``label``, ``E[eps | x_t] = M_t (x_t - sqrt(a) mu)`` with
    ``M_t = sigma_t (a S + sigma_t^2 I)^{-1}``, has ``||M_t - I||_2 < tolerance``."""
    schedule, cov = diffusion.make_schedule("linear", T=1000), toy.anisotropic().covs[label]
    eye = torch.eye(2, dtype=torch.float64)
    for t in range(schedule.T):
        a = schedule.alpha_bars[t].item()
        m = (1 - a) ** 0.5 * torch.linalg.inv(a * cov + (1 - a) * eye)
        if torch.linalg.matrix_norm(m - eye, ord=2) < tolerance:
            return t
    raise ValueError(f"||M_t - I|| never falls below tolerance={tolerance!r}")


GRADING = [
    Grading(name="renoise", reference=_renoise, hidden_cases=_renoise_hidden,
            understanding="the forward chain is Markov: noise from s to t scales x_s by sqrt(a_t/a_s) and adds variance "
                          "1 - a_t/a_s, derived from composing two Gaussian steps, not read off a formula",
            shortcut="the lesson displays only the jump from x_0; applying it to x_s (or q_sample) gives the wrong "
                     "scale and variance, and no library function re-noises from s"),
    Grading(name="bayes_accuracy", reference=_bayes_accuracy, hidden_cases=_accuracy_hidden,
            understanding="where along t the class is decided: the noised class laws, Bayes' rule with a prior (the "
                          "threshold moves with the weights) and the Gaussian tail of each class beyond it",
            shortcut="no library function gives a Bayes accuracy; sampling with the mixture's posterior is off by "
                     "~1e-2, far above the tolerance, and the lesson displays no accuracy formula"),
    Grading(name="gaussian_eps", reference=_gaussian_eps, hidden_cases=_gaussian_hidden,
            understanding="Tweedie for Gaussian data: the noised law N(sqrt(a) mu, a S + sigma^2 I), its score, and "
                          "eps = -sigma_t * score combined into sigma_t (a S + sigma^2 I)^-1 (x - sqrt(a) mu)",
            shortcut="the mixture's eps_fn, score and log_prob (and OracleDenoiser) are twins and score 0; the lesson "
                     "displays the noised law and score = -eps/sigma but not the Gaussian's score or its eps"),
    Grading(name="ddim_as_euler", reference=_ddim_step, hidden_cases=_ddim_hidden,
            understanding="deterministic DDIM from Tweedie: x0-hat from eps, re-noised to s with the same eps, i.e. one "
                          "Euler step of dx_bar/dsigma_bar = eps in the rescaled variables",
            shortcut="diffusion.ddim_step and diffusion.sample are twins and score 0; section 3 describes DDIM in "
                     "words only, so the update has to be derived"),
]
