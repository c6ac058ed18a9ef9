"""Exercises of lesson 03 (classifier-free guidance): the public half of three graded ones.

- ``implicit_log_odds(model, x, t, y, y_other, schedule)``: the gradient of the log-odds
  ``log p_t(y | x_t) / p_t(y_other | x_t)`` that a CFG network implies (Bayes' rule on its noise
  predictions), checked with a perfect model against the exact noised classifier.
- ``cfg_x0_guess(x_t, eps_cond, eps_uncond, alpha_bar, w)``: the denoised guess under CFG, checked
  against the exact posterior means ``(1 + w) E[x0 | x_t, y] - w E[x0 | x_t]`` (Tweedie).
- ``cfg_score_1d(x, means, var, weights, y, w, alpha_bar)``: the score that CFG with a perfect model
  follows at one noise level, for a 1-D mixture of two Gaussians of one variance, in closed form.

References, hidden cases and what each exercise tests: ``instructor/exercises/classifier_free_guidance.py``.
"""

from __future__ import annotations

import torch

from .. import diffusion, toy
from .core import Exercise

LESSON = "03_classifier_free_guidance"
_LINEAR, _COSINE = diffusion.make_schedule("linear", T=1000), diffusion.make_schedule("cosine", T=1000)


def _noised_points(mixture: toy.GaussianMixture2D, t: torch.Tensor, schedule: diffusion.Schedule,
                   gen: torch.Generator) -> torch.Tensor:
    """``x_t`` of points drawn from the mixture, each at its own ``t`` (float64)."""
    x0 = mixture.sample(len(t), generator=gen)[0].double()
    return diffusion.q_sample(x0, t, torch.randn(len(t), 2, generator=gen, dtype=torch.float64), schedule)


# --- implicit_log_odds --------------------------------------------------------------------------


def _log_odds_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    oracle = toy.OracleDenoiser(mixture, _LINEAR)
    t = torch.randint(100, 900, (40,), generator=gen)
    x = _noised_points(mixture, t, _LINEAR, gen)
    return [(oracle, x, t, y, y_other, _LINEAR) for y, y_other in ((1, 0), (2, 1), (0, 2))]


# --- cfg_x0_guess -------------------------------------------------------------------------------


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


def _x0_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_x0_case(mixture, 1, t, w, 40, _LINEAR, gen) for t, w in ((200, 1.0), (500, 3.0), (800, 2.0))]


# --- cfg_score_1d -------------------------------------------------------------------------------


def _score_1d_case(gen: torch.Generator, means: tuple[float, float], var: float, weights: tuple[float, float],
                   y: int, w: float, alpha_bar: float, n: int = 40, dtype: torch.dtype = torch.float64) -> tuple:
    x = (3.0 * torch.randn(n, generator=gen, dtype=torch.float64)).to(dtype)
    return (x, torch.tensor(means, dtype=torch.float64), var, torch.tensor(weights, dtype=torch.float64), y, w,
            alpha_bar)


def _score_1d_public(gen: torch.Generator) -> list[tuple]:
    return [_score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 1, 1.0, 0.9),
            _score_1d_case(gen, (-1.0, 1.5), 0.5, (0.5, 0.5), 1, 3.0, 0.3),
            _score_1d_case(gen, (0.5, -2.0), 0.2, (0.7, 0.3), 0, 2.0, 0.6)]


EXERCISES = [
    Exercise(name="implicit_log_odds",
             lesson=LESSON,
             points=2,
             public_cases=_log_odds_public,
             tolerance=1e-5,
             hint="section 3: write log p_t(y | x_t) with Bayes' rule for each of the two labels and subtract; "
                  "then turn scores into noise predictions (lesson 0). Every point has its own noise level.",
             twins=("course_lib.guidance.implicit_classifier_grad", "course_lib.tilted.implicit_classifier_grad",
                    "course_lib.guidance.classifier_log_prob_grad",
                    "course_lib.toy.GaussianMixture2D.log_posterior_fn", "course_lib.toy.GaussianMixture2D.posterior",
                    "course_lib.oracles.log_posterior_fn", "course_lib.oracles.OracleClassifier",
                    "course_lib.toy.OracleClassifier", "course_lib.toy.GaussianMixture2D.noised_log_posterior")),
    Exercise(name="cfg_x0_guess",
             lesson=LESSON,
             points=2,
             public_cases=_x0_public,
             tolerance=1e-5,
             call=_x0_call,
             hint="lesson 0's denoised guess, computed from the noise prediction that CFG actually uses",
             twins=("course_lib.guidance.cfg", "course_lib.guidance.model_cfg_eps_fn", "course_lib.diffusion.ddim_step")),
    Exercise(name="cfg_score_1d",
             lesson=LESSON,
             points=2,
             public_cases=_score_1d_public,
             tolerance=1e-6,
             hint="section 5: what does noising do to each Gaussian component, and what is the score of a "
                  "two-component mixture (lesson 0)? Then combine the class's score and the mixture's as CFG does.",
             twins=("course_lib.toy.GaussianMixture2D.score", "course_lib.toy.GaussianMixture2D.eps_fn",
                    "course_lib.toy.GaussianMixture2D.noised", "course_lib.toy.GaussianMixture2D.posterior",
                    "course_lib.tilted.TiltedDensity", "course_lib.toy.noised_gaussians", "course_lib.oracles.eps_fn",
                    "course_lib.oracles.OracleDenoiser", "course_lib.toy.OracleDenoiser",
                    "course_lib.toy.GaussianMixture2D.noised_score", "course_lib.toy.GaussianMixture2D.denoised")),
]
