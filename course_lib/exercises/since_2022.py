"""Exercises of lesson 05 (guidance since 2022): four graded ones, and what the end-of-lesson
exercises should find.

Graded (hidden cases use what the instant check never shows: an empty window and the whole
range, both ends of the window, a batch of one, images, ``tau`` near 0 and 1, another mixture):

- ``interval_eps(eps_guided, eps_plain, t, t_lo, t_hi)``: guidance in a limited interval
  (Kynkaanniemi et al. 2024), per sample.
- ``gaussian_product(mean_a, cov_a, mean_b, cov_b)``: the product of two Gaussian densities as
  ``(mean, cov, log_scale)``, checked against :meth:`toy.GaussianMixture2D.product` (the exact oracle).
- ``langevin_step_size(score, noise, snr)``: Song et al.'s signal-to-noise step rule.
- ``flow_velocity(eps, x, tau)``: the rectified-flow velocity from an eps prediction, checked
  against the exact velocity of a mixture (:func:`flow.mixture_velocity_fn`).

End-of-lesson: :func:`interval_sweep`, :func:`autoguidance_sweep` and :func:`corrector_sweep` compute
what exercises 1 to 3 ask the student to find.
"""

from __future__ import annotations

import math

import torch

from .. import diffusion, flow, guidance, langevin, metrics, tilted, toy
from .core import Exercise

LESSON = "05_guidance_since_2022"
_LINEAR = diffusion.make_schedule("linear", T=1000)


# --- interval_eps -------------------------------------------------------------------------------


def _interval_public(gen: torch.Generator) -> list[tuple]:
    eps_g, eps_p = torch.randn(60, 2, generator=gen), torch.randn(60, 2, generator=gen)
    t = torch.randint(0, 1000, (60,), generator=gen)
    return [(eps_g, eps_p, t, 200, 600), (eps_g, eps_p, t, 0, 300)]


# --- gaussian_product ---------------------------------------------------------------------------


def _spd(gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    m = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    return scale * (m @ m.T + 0.2 * torch.eye(2, dtype=torch.float64))


def _product_public(gen: torch.Generator) -> list[tuple]:
    return [(torch.randn(2, generator=gen, dtype=torch.float64), _spd(gen),
             torch.randn(2, generator=gen, dtype=torch.float64), _spd(gen)) for _ in range(3)]


# --- langevin_step_size -------------------------------------------------------------------------

def _step_public(gen: torch.Generator) -> list[tuple]:
    return [(torch.randn(50, 2, generator=gen) * s, torch.randn(50, 2, generator=gen), r)
            for s, r in ((1.0, 0.16), (10.0, 0.16), (3.0, 0.5))]


# --- flow_velocity ------------------------------------------------------------------------------

def _flow_case(mixture: toy.GaussianMixture2D, y: int | None, tau: torch.Tensor, gen: torch.Generator,
               shape: tuple[int, ...] | None = None) -> tuple:
    """Points of ``x_tau`` (float64) with the exact eps of the path; the mixture and ``y`` travel for the reference."""
    n = tau.shape[0]
    x0 = mixture.sample(n, generator=gen)[0].double()
    x = (1 - tau)[:, None] * x0 + tau[:, None] * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    v = flow.mixture_velocity_fn(mixture, y)(x, tau)
    eps = flow.eps_from_velocity(v, x, flow.linear_path(tau))
    return eps, x, tau, mixture, y


def _flow_call(fn, eps, x, tau, mixture, y):
    return fn(eps, x, tau)


def _flow_public(gen: torch.Generator) -> list[tuple]:
    mixture = toy.anisotropic()
    return [_flow_case(mixture, y, torch.full((30,), tau, dtype=torch.float64), gen)
            for y, tau in ((1, 0.3), (None, 0.6), (0, 0.9))]


EXERCISES = [
    Exercise(name="interval_eps",
             lesson=LESSON,
             points=1,
             public_cases=_interval_public,
             tolerance=1e-6,
             hint="section 2: which prediction does each sample get, and do the window's two ends belong to it?"),
    Exercise(name="gaussian_product",
             lesson=LESSON,
             points=2,
             public_cases=_product_public,
             tolerance=1e-6,
             hint="section 5: add the two log-densities and complete the square in x; what is left over does not "
                  "depend on x, and that is log_scale"),
    Exercise(name="langevin_step_size",
             lesson=LESSON,
             points=1,
             public_cases=_step_public,
             tolerance=1e-5,
             hint="section 4: write the drift's and the noise term's mean lengths as functions of the step and "
                  "set their ratio to snr; lengths are per sample, then averaged over the batch"),
    Exercise(name="flow_velocity",
             lesson=LESSON,
             points=1,
             public_cases=_flow_public,
             tolerance=1e-5,
             call=_flow_call,
             hint="section 6: write x0 in terms of x and eps on the path, then differentiate the path in tau"),
]


# --- what the end-of-lesson exercises should find ----------------------------------------------


