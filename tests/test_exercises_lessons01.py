"""Lessons 00 and 01: the graded exercises' references against closed forms, and the results
the end-of-lesson exercises tell the student to expect."""

import torch

from course_lib import diffusion, toy
from course_lib.exercises import diffusion_refresher as lesson00
from course_lib.exercises.core import difference


def test_gaussian_eps_reference_is_the_closed_form():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x, t = torch.randn(20, 2, dtype=torch.float64), 400
    a = schedule.alpha_bars[t].item()
    cov_t = a * mixture.covs[1] + (1 - a) * torch.eye(2, dtype=torch.float64)
    closed = (1 - a) ** 0.5 * torch.linalg.solve(cov_t, (x - a**0.5 * mixture.means[1]).T).T
    assert torch.allclose(lesson00._gaussian_eps(x, a, mixture.means[1], mixture.covs[1]), closed)
    assert torch.allclose(lesson00._gaussian_eps(x, a, mixture.means[1], mixture.covs[1]),
                          mixture.eps_fn(schedule, y=1)(x, torch.full((20,), t)))


def test_gaussian_eps_cases_catch_a_missing_noise_term():
    """A typical mistake (the covariance of x_t without the added noise) fails public and hidden cases."""
    exercise = lesson00.EXERCISES[[e.name for e in lesson00.EXERCISES].index("gaussian_eps")]

    def wrong(x_t, alpha_bar, mean, cov):
        return ((1 - alpha_bar) ** 0.5 * torch.linalg.solve(alpha_bar * cov, (x_t.to(cov.dtype) - alpha_bar**0.5 * mean).T)).T

    gen = torch.Generator().manual_seed(0)
    for cases in (exercise.public_cases(gen), exercise.hidden_cases(gen)):
        assert max(difference(wrong(*args).to(args[0].dtype), exercise.reference(*args), "x") for args in cases) > 1e-2


def test_expected_eta_sweep_matches_the_lesson():
    rows = lesson00.expected_eta_sweep()
    assert all(abs(rows[50, eta][0] - rows[50, 0.0][0]) < 0.02 for eta in (0.5, 1.0))
    assert rows[20, 1.0][0] > max(rows[20, 0.0][0], rows[20, 0.5][0])
    assert rows[20, 1.0][1] < rows[20, 0.0][1]


def test_expected_schedule_rows_matches_the_lesson():
    linear, cosine = lesson00.expected_schedule_rows("linear"), lesson00.expected_schedule_rows("cosine")
    for steps in ("DDIM, 20 steps", "DDIM, 10 steps"):
        assert cosine[steps][1] > linear[steps][1]
    for name in ("DDPM, 1000 steps", "DDIM, 50 steps"):
        assert abs(cosine[name][0] - linear[name][0]) < 0.02


def test_expected_identity_step_in_the_stated_range():
    assert 450 <= lesson00.expected_identity_step() <= 500
