"""Instructor half of the exercises of in_practice (lesson 06): references, hidden cases, what each tests."""

from __future__ import annotations

import math

import torch

from course_lib import exercises as _public
from course_lib.exercises.in_practice import _spd

from .core import Grading


def _guided_gaussian(mean_a, cov_a, mean_b, cov_b, w):
    """log N_a^(1+w) N_b^(-w) is quadratic with precision (1+w) P_a - w P_b and linear term
    (1+w) P_a m_a - w P_b m_b."""
    prec_a, prec_b = torch.linalg.inv(cov_a), torch.linalg.inv(cov_b)
    prec = (1 + w) * prec_a - w * prec_b
    cov = torch.linalg.inv(prec)
    mean = cov @ ((1 + w) * prec_a @ mean_a - w * prec_b @ mean_b)
    return mean, (cov + cov.T) / 2


def _gaussian_hidden(gen: torch.Generator) -> list[tuple]:
    m_a, m_b = torch.randn(2, generator=gen, dtype=torch.float64), torch.randn(2, generator=gen, dtype=torch.float64)
    c = _spd(gen, 0.3)
    iso = 0.64 * torch.eye(2, dtype=torch.float64)
    return [(m_a, c, m_b, 4.0 * c, 0.0),                       # w = 0: the condition itself
            (m_a, c, m_a.clone(), 2.0 * c, 3.0),                # same centre: pure sharpening (a temperature)
            (m_a, iso, m_b, iso.clone(), 4.0),                  # equal covariances: pure shift
            (m_a, c, m_b, _spd(gen, 50.0), 10.0),              # a very broad contrast, large w
            (m_a, c, m_b, 2.0 * c, -0.5)]                       # interpolation


def _rescale_phi(eps_guided, eps_cond, target_std):
    """std(phi r g + (1 - phi) g) = (1 + phi (r - 1)) std(g), r = std(c) / std(g)."""
    dims = list(range(1, eps_guided.ndim))
    std_g, std_c = eps_guided.std(dim=dims), eps_cond.std(dim=dims)
    r = std_c / std_g
    return (target_std / std_g - 1) / (r - 1)


def _rescale_hidden(gen: torch.Generator) -> list[tuple]:
    eps_c = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    eps_g = 4 * eps_c + torch.randn(3, 2, generator=gen, dtype=torch.float64)
    img_c = torch.randn(1, 1, 28, 28, generator=gen)
    img_g = 3 * img_c + torch.randn(1, 1, 28, 28, generator=gen)
    std = lambda e: e.flatten(1).std(1)  # noqa: E731
    return [(eps_g, eps_c, std(eps_c)),                        # phi = 1: the conditional std
            (eps_g, eps_c, std(eps_g)),                        # phi = 0: the guided std
            (img_g, img_c, 0.5 * (std(img_c) + std(img_g))),   # a batch of one, halfway
            (img_g * 0.2, img_c, std(img_g * 0.2) * 0.9)]      # guided std below the conditional one


def _x0_loss_guided_eps(eps, x_t, alpha_bar, target, weight):
    """x0_hat = (x_t - sigma eps) / sqrt(ab); with eps fixed, d x0_hat / d x_t = 1 / sqrt(ab), so
    grad_x L = (x0_hat - target) / sqrt(ab), and the score term -weight grad_x L is
    eps += weight * sigma * grad_x L (tests/test_exercises_in_practice.py checks it against
    guidance.loss_guidance)."""
    shape = (-1, *([1] * (x_t.ndim - 1)))
    ab = alpha_bar.to(x_t.dtype).reshape(shape)
    sigma = (1 - ab).sqrt()
    x0_hat = (x_t - sigma * eps) / ab.sqrt()
    return eps + weight * sigma * (x0_hat - target) / ab.sqrt()


def _loss_hidden(gen: torch.Generator) -> list[tuple]:
    x_t, eps = torch.randn(3, 2, generator=gen, dtype=torch.float64), torch.randn(3, 2, generator=gen,
                                                                                  dtype=torch.float64)
    target = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    img = torch.randn(1, 1, 28, 28, generator=gen)
    return [(eps, x_t, torch.tensor([0.999, 0.5, 0.001], dtype=torch.float64), target, 2.0),   # both ends
            (eps, x_t, torch.full((3,), 0.3, dtype=torch.float64), target, 0.0),               # weight 0
            (img, -img, torch.tensor([0.2]), img.clamp(-1, 1), 5.0),                           # batch of one
            (eps, (math.sqrt(0.4) * target + math.sqrt(0.6) * eps), torch.full((3,), 0.4, dtype=torch.float64),
             target, 1.0)]                                                                     # x0-hat on target


_GRADING = [
    Grading(name="guided_gaussian", reference=_guided_gaussian, hidden_cases=_gaussian_hidden,
            understanding="that CFG's t = 0 target is a product of powers of densities, and what the powers do to a "
                          "Gaussian: precisions combine with weights 1 + w and -w, so an equal-shape contrast only "
                          "moves the class and a broader one also sharpens it",
            shortcut="no library function returns a Gaussian power product (GaussianMixture2D.product multiplies "
                     "with unit powers and cannot take a negative one) and the lesson states the target only as a "
                     "density; the hidden cases (w = 0, same centre, equal covariances, w < 0) catch sign slips"),
    Grading(name="rescale_phi", reference=_rescale_phi, hidden_cases=_rescale_hidden,
            understanding="that CFG-rescale mixes two multiples of the same guided tensor, so the result's std is "
                          "linear in phi, per sample",
            shortcut="guidance.rescaled goes from phi to a prediction, not back; the lesson shows the forward rule "
                     "only; hidden cases at phi = 0 and 1 exactly, a batch of one and a guided std below the "
                     "conditional one catch a wrong inversion"),
    Grading(name="x0_loss_guided_eps", reference=_x0_loss_guided_eps, hidden_cases=_loss_hidden,
            understanding="the chain rule from x0-hat back to x_t (a factor 1 / sqrt(alpha_bar)) and the step from "
                          "a score term to an eps term (a factor -sigma_t): why loss guidance is amplified at high noise",
            shortcut="the lesson writes the rule with grad_x of the loss, never in x0-hat or with the two factors; "
                     "guidance.loss_guidance is a twin (scores 0); hidden cases at alpha_bar near 0 and 1 and "
                     "weight 0 catch a missing factor"),
]

# Active once course_lib.exercises lists in_practice (its _MODULES): until then the instructor registry,
# which must mirror the public one, does not see these three.
GRADING = _GRADING if "guided_gaussian" in _public.REGISTRY else []
