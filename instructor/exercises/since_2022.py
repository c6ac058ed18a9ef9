"""Instructor half of lesson 05's exercises: references, hidden cases, what each tests; and what the
end-of-lesson exercises should find."""

from __future__ import annotations

import math

import torch

from course_lib import diffusion, flow, guidance, langevin, sample_metrics, tilted, toy
from course_lib.exercises.since_2022 import _COSINE, _LINEAR, _spd, _vp_case

from .core import Grading


def _repair_reference(var: float, delta_good: float, delta_bad: float) -> float:
    """At t = 0 both models are Gaussians N(mu, var + delta^2) (per direction); autoguidance's score is
    ``-(x - mu) [(1 + w) / (var + dg^2) - w / (var + db^2)]``, the class's own when the bracket is ``1 / var``."""
    good, bad = 1 / (var + delta_good**2), 1 / (var + delta_bad**2)
    return (1 / var - good) / (good - bad)


def _repair_hidden(gen: torch.Generator) -> list[tuple]:
    v = 0.05 + torch.rand((), generator=gen).item()
    return [(v, 0.0, 0.3),              # an exact good model needs no guidance
            (v, 0.2, 0.21),             # a bad model barely worse: a large weight
            (v, 0.2, 1e3),              # a hopeless bad model
            (4.0, 0.5, 1.0), (1e-3, 0.05, 0.1)]


def _corrector_reference(gamma: float, gamma_predictor: float) -> float:
    """The reverse SDE's drift ``f - g^2 s_gamma`` is the probability-flow drift ``f - g^2 s_p / 2`` plus
    ``-g^2 (2 s_gamma - s_p) / 2``; with the SDE's noise ``g dW`` that is Langevin on the score
    ``2 s_gamma - s_p = (2 gamma - gamma_p) s_y + (1 - 2 gamma + gamma_p) s``."""
    return 2 * gamma - gamma_predictor


def _corrector_hidden(gen: torch.Generator) -> list[tuple]:
    g = 1 + 5 * torch.rand((), generator=gen).item()
    return [(1.0, 1.0), (0.0, 1.0), (g, 0.5), (g, g), (0.5, 0.0), (g, 1.0)]


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


def _vp_reference(eps, x_t, alpha_bar, mixture, y) -> torch.Tensor:
    """The exact rectified-flow velocity at ``x_tau = x_t / (sqrt(a) + sigma)``, ``tau = sigma / (sqrt(a) + sigma)``."""
    a = alpha_bar.double()
    root, sigma = a.sqrt(), (1 - a).sqrt()
    tau = sigma / (root + sigma)
    return flow.mixture_velocity_fn(mixture, y)(x_t.double() / (root + sigma)[:, None], tau)


def _vp_hidden(gen: torch.Generator) -> list[tuple]:
    aniso, branches = toy.anisotropic(), toy.branches(depth=2)
    t = torch.randint(1, 999, (20,), generator=gen)
    return [_vp_case(aniso, 1, t, _LINEAR, gen), _vp_case(aniso, 2, torch.tensor([0, 0, 999, 999]), _LINEAR, gen),
            _vp_case(aniso, None, t, _COSINE, gen), _vp_case(branches, 0, t[:1], _LINEAR, gen),
            _vp_case(toy.unequal_weights(), None, t, _LINEAR, gen, dtype=torch.float32)]


GRADING = [
    Grading(name="autoguidance_repair_weight", reference=_repair_reference, hidden_cases=_repair_hidden,
            understanding="autoguidance extrapolates between two scores: for blurred Gaussians the t = 0 precision is "
                          "(1+w)/(v+dg^2) - w/(v+db^2), so w = (1/v - 1/(v+dg^2)) / (1/(v+dg^2) - 1/(v+db^2))",
            shortcut="no library function solves for the weight and no cell states it; the hidden cases (an exact "
                     "good model, a bad model barely worse, a hopeless one) check the derived expression"),
    Grading(name="corrector_scale", reference=_corrector_reference, hidden_cases=_corrector_hidden,
            understanding="Bradley & Nakkiran's split of the ancestral sampler: drift = probability flow at the "
                          "predictor's scale + Langevin on 2 s_gamma - s_p, i.e. scale 2 gamma - gamma_p",
            shortcut="the lesson states no gamma' before the exercise; recalling the paper's 2 gamma - 1 fails "
                     "the public and hidden cases whose predictor is not the conditional model"),
    Grading(name="gaussian_product", reference=_product, hidden_cases=_product_hidden,
            understanding="completing the square: precisions add, the mean is precision-weighted, and the leftover "
                          "constant is log N(mean_a; mean_b, cov_a + cov_b)",
            shortcut="GaussianMixture2D.product is a twin, and it gives no log_scale; the hidden cases (a Gaussian "
                     "squared, crossed thin components, a very broad one) check the derivation"),
    Grading(name="flow_velocity_from_vp", reference=_vp_reference, hidden_cases=_vp_hidden,
            understanding="the rectified-flow path is our noising rescaled: x_tau = x_t / (sqrt(a) + sigma) carries "
                          "the same noise, so v = E[eps - x0 | x_t] = eps - (x_t - sigma eps) / sqrt(a)",
            shortcut="the lesson converts velocity and eps only on one path; the flow module's converters and the "
                     "mixture's exact velocity are twins, and the reference is the exact velocity at the matched "
                     "point (t = 0 and T - 1, a cosine schedule, float32)"),
]


# --- what the end-of-lesson exercises should find ----------------------------------------------


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
        out.append(sample_metrics.sliced_wasserstein(diffusion.sample(fn, (n, 2), schedule, steps=steps, eta=0.0,
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
        out.append((sample_metrics.sliced_wasserstein(x, target), gap_share(x, mixture, y, target)))
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
    return [sample_metrics.sliced_wasserstein(langevin.sample_pc(fn, (n, 2), schedule, steps=steps,
                                                          corrector_steps=corrector_steps, corrector_min_t=t, eta=0.0,
                                                          x_T=x_T, generator=torch.Generator().manual_seed(seed + 2)),
                                       target) for t in min_ts]
