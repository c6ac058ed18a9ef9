"""Instructor half of the exercises of since_2022: references, hidden cases, what each tests."""

from __future__ import annotations

import math
import torch
from course_lib import diffusion, flow, guidance, langevin, metrics, tilted, toy
from course_lib.exercises.core import Exercise
from course_lib.exercises.since_2022 import _LINEAR, _flow_case, _spd
from .core import Grading


def _interval(eps_guided: torch.Tensor, eps_plain: torch.Tensor, t: torch.Tensor, t_lo: int, t_hi: int):
    """Through :func:`guidance.interval` on constant predictions."""
    return guidance.interval(lambda x, tt: eps_guided, lambda x, tt: eps_plain, t_lo, t_hi)(eps_guided, t)


def _interval_hidden(gen: torch.Generator) -> list[tuple]:
    eps_g, eps_p = torch.randn(30, 2, generator=gen), torch.randn(30, 2, generator=gen)
    t = torch.randint(0, 1000, (30,), generator=gen)
    lo = int(torch.randint(0, 500, (), generator=gen))
    edges = torch.tensor([lo - 1, lo, lo + 100, lo + 101])
    img_g, img_p = torch.randn(4, 1, 28, 28, generator=gen), torch.randn(4, 1, 28, 28, generator=gen)
    return [(eps_g, eps_p, t, 0, 999), (eps_g, eps_p, t, 600, 400), (eps_g[:4], eps_p[:4], edges, lo, lo + 100),
            (eps_g[:1], eps_p[:1], t[:1], int(t[0]), int(t[0])), (img_g, img_p, edges, lo, lo + 100),
            (eps_g, eps_p, t, lo, lo + 300)]


def _product(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor):
    """The oracle: the product mixture of two one-component mixtures gives mean and covariance;
    the scale is ``log N(mean_a; mean_b, cov_a + cov_b)``, a one-component mixture's log-density."""
    a = toy.GaussianMixture2D(mean_a[None], cov_a[None], [1.0])
    b = toy.GaussianMixture2D(mean_b[None], cov_b[None], [1.0])
    prod = a.product(b)
    scale = toy.GaussianMixture2D(mean_b[None], (cov_a + cov_b)[None], [1.0]).log_prob(mean_a[None].double())
    return prod.means[0], prod.covs[0], float(scale[0])


def _product_hidden(gen: torch.Generator) -> list[tuple]:
    m, c = torch.randn(2, generator=gen, dtype=torch.float64), _spd(gen)
    thin = torch.tensor([[1.0, 0.0], [0.0, 0.01]], dtype=torch.float64)
    return [(m, c, m.clone(), c.clone()),                                            # a Gaussian squared
            (m, c, m + 3.0, _spd(gen, 0.1)),                                         # far apart, one narrow
            (m, thin, m.flip(0), thin.flip(0).flip(1)),                              # crossed thin components
            (m, 100 * torch.eye(2, dtype=torch.float64), -m, c)]                    # a very broad one


def _step_hidden(gen: torch.Generator) -> list[tuple]:
    r = 0.01 + torch.rand((), generator=gen).item()
    return [(torch.randn(1, 2, generator=gen) * 4, torch.randn(1, 2, generator=gen), r),
            (torch.randn(6, 1, 28, 28, generator=gen) * 20, torch.randn(6, 1, 28, 28, generator=gen), 0.16),
            (torch.randn(40, 2, generator=gen) * 0.1, torch.randn(40, 2, generator=gen), 1.0),
            (torch.randn(40, 2, generator=gen, dtype=torch.float64) * 50, torch.randn(40, 2, generator=gen,
                                                                                     dtype=torch.float64), r)]


def _flow_reference(eps, x, tau, mixture, y) -> torch.Tensor:
    return flow.mixture_velocity_fn(mixture, y)(x, tau)


def _flow_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, branches = toy.anisotropic(), toy.branches(depth=2)
    tau = 0.02 + 0.96 * torch.rand(20, generator=gen, dtype=torch.float64)
    return [_flow_case(aniso, 1, tau, gen), _flow_case(aniso, 2, torch.full((5,), 0.01, dtype=torch.float64), gen),
            _flow_case(aniso, None, torch.full((5,), 0.995, dtype=torch.float64), gen),
            _flow_case(branches, 0, tau[:1], gen), _flow_case(toy.unequal_weights(), None, tau, gen)]


def interval_sweep(mixture: toy.GaussianMixture2D, y: int, w: float, windows: list[tuple[int, int]],
                   schedule: diffusion.Schedule = _LINEAR, *, n: int = 2000, steps: int = 50,
                   seed: int = 0) -> list[float]:
    """Exercise 1: SW distance to exact samples of ``p(x | y)`` of exact-score CFG samples at weight
    ``w`` guided only in each window (deterministic DDIM, the same noise for every window)."""
    target = mixture.sample(n, y, generator=torch.Generator().manual_seed(seed))[0]
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1))
    cond, uncond = mixture.eps_fn(schedule, y), mixture.eps_fn(schedule)
    out = []
    for lo, hi in windows:
        fn = guidance.interval(guidance.cfg(cond, uncond, w), cond, lo, hi)
        out.append(metrics.sliced_wasserstein(diffusion.sample(fn, (n, 2), schedule, steps=steps, eta=0.0,
                                                               x_T=x_T), target))
    return out


def gap_share(samples: torch.Tensor, mixture: toy.GaussianMixture2D, y: int, reference: torch.Tensor,
              level: float = 0.02) -> float:
    """The share of ``samples`` in the low-density gaps of ``p(x | y)``: where the exact ``log p(x | y)``
    is below its ``level`` quantile over ``reference`` (exact samples; so about ``level`` for them)."""
    threshold = mixture.log_prob(reference.double(), y).quantile(level)
    return float((mixture.log_prob(samples.double(), y) < threshold).double().mean())


def autoguidance_sweep(mixture: toy.GaussianMixture2D, y: int, delta_good: float, delta_bad: float,
                       ws: list[float], schedule: diffusion.Schedule = _LINEAR, *, n: int = 2000, steps: int = 50,
                       seed: int = 0) -> list[tuple[float, float]]:
    """Exercise 2: ``(SW distance to exact samples of p(x | y), gap share)`` of autoguided samples per ``w``,
    the good model the mixture broadened by ``delta_good`` and the bad one by ``delta_bad`` (both exact)."""
    if not 0 <= delta_good < delta_bad or not math.isfinite(delta_bad):
        raise ValueError(f"need 0 <= delta_good < delta_bad, got {delta_good!r} and {delta_bad!r}")
    target = mixture.sample(n, y, generator=torch.Generator().manual_seed(seed))[0]
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1))
    good, bad = mixture.broadened(delta_good).eps_fn(schedule, y), mixture.broadened(delta_bad).eps_fn(schedule, y)
    out = []
    for w in ws:
        x = diffusion.sample(guidance.autoguidance(good, bad, w), (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T)
        out.append((metrics.sliced_wasserstein(x, target), gap_share(x, mixture, y, target)))
    return out


def corrector_sweep(mixture: toy.GaussianMixture2D, y: int, w: float, min_ts: list[int],
                    schedule: diffusion.Schedule = _LINEAR, *, corrector_steps: int = 10, n: int = 1000,
                    steps: int = 50, seed: int = 0) -> list[float]:
    """Exercise 3: SW distance to exact samples of the tilted density ``p_w`` of CFG with exact scores plus
    ``corrector_steps`` Langevin steps per level, correcting only at ``t >= min_t``, per ``min_t``."""
    tilt = tilted.TiltedDensity(mixture, y, w, resolution=201)
    target = tilt.sample(n, generator=torch.Generator().manual_seed(seed))
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1))
    fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
    return [metrics.sliced_wasserstein(langevin.sample_pc(fn, (n, 2), schedule, steps=steps,
                                                          corrector_steps=corrector_steps, corrector_min_t=t, eta=0.0,
                                                          x_T=x_T, generator=torch.Generator().manual_seed(seed + 2)),
                                       target) for t in min_ts]


GRADING = [
    Grading(name="interval_eps", reference=_interval, hidden_cases=_interval_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="gaussian_product", reference=_product, hidden_cases=_product_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="langevin_step_size", reference=lambda score, noise, snr: langevin.snr_step_size(score, noise, snr), hidden_cases=_step_hidden,
            understanding="TODO", shortcut="TODO"),
    Grading(name="flow_velocity", reference=_flow_reference, hidden_cases=_flow_hidden,
            understanding="TODO", shortcut="TODO"),
]
