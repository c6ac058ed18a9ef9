"""Lesson 01's graded exercises: a from-scratch answer passes the public and hidden cases, the typical
mistake fails both, the references agree with the exact oracle; and the results the end-of-lesson
exercises ask for (instructor material)."""

from __future__ import annotations

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

from course_lib import diffusion, exercises, toy
from course_lib.exercises import explicit_conditioning as public01
from instructor import exercises as graded
from instructor.exercises import explicit_conditioning as lesson01


def null_eps(eps, log_lik, weights):
    return (torch.softmax(weights.log()[None] + log_lik, dim=1).T[..., None] * eps).sum(0)


def noisy_label_eps(eps, log_lik, weights, flip, y):
    K = weights.shape[0]
    q = torch.full((K,), flip / (K - 1), dtype=log_lik.dtype)
    q[y] = 1 - flip
    return (torch.softmax(weights.log()[None] + q.log()[None] + log_lik, dim=1).T[..., None] * eps).sum(0)


def gaussian_loss_floor(cov, alpha_bars):
    D = cov.shape[0]
    out = [torch.trace(torch.linalg.solve(a * cov + (1 - a) * torch.eye(D, dtype=cov.dtype), a * cov)) / D
           for a in alpha_bars.to(cov.dtype)]
    return torch.stack(out).to(alpha_bars.dtype)


RIGHT = dict(null_eps=null_eps, noisy_label_eps=noisy_label_eps, gaussian_loss_floor=gaussian_loss_floor)
WRONG = dict(
    null_eps=lambda eps, log_lik, w: (torch.softmax(log_lik, dim=1).T[..., None] * eps).sum(0),   # weights left out
    noisy_label_eps=lambda eps, log_lik, w, flip, y: (1 - flip) * eps[y] + flip * null_eps(eps, log_lik, w),  # mix
    gaussian_loss_floor=lambda cov, ab: 1 - ab,                                                    # sigma^2 alone
)


def test_the_lesson_has_these_exercises_and_no_other():
    assert [e.name for e in exercises.for_lesson("01_explicit_conditioning")] == list(RIGHT)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistake_fails_public_and_hidden(name):
    wrong_fails(name, WRONG[name], public=True)


def test_null_eps_underflow_is_caught():
    def underflows(eps, log_lik, weights):
        p = weights[None] * log_lik.exp()
        return ((p / p.sum(1, keepdim=True)).T[..., None] * eps).sum(0)

    item = graded.get("null_eps")
    assert max(item.errors(underflows, item.exercise.cases())) > item.exercise.tolerance


def test_null_eps_reference_is_the_exact_unconditional_denoiser():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x = mixture.sample(64, generator=torch.Generator().manual_seed(0))[0].double()
    for t in (0, 300, 999):
        args = public01._null_case(mixture, x, t)
        assert torch.allclose(lesson01._null_eps(*args), mixture.eps_fn(schedule)(x, torch.full((64,), t)), atol=1e-10)


def test_noisy_label_eps_limits():
    """flip = 0: the label's own denoiser; flip = (K - 1) / K: the label says nothing, the null denoiser."""
    mixture = toy.anisotropic()
    args = public01._null_case(mixture, torch.randn(30, 2, dtype=torch.float64), 200)
    assert torch.allclose(lesson01._noisy_label_eps(*args, 0.0, 1), args[0][1])
    assert torch.allclose(lesson01._noisy_label_eps(*args, 2 / 3, 1), lesson01._null_eps(*args), atol=1e-12)


def test_gaussian_loss_floor_matches_monte_carlo():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    one = toy.GaussianMixture2D(mixture.means[1:2], mixture.covs[1:2], torch.ones(1))
    x0 = one.sample(200_000, generator=torch.Generator().manual_seed(1))[0]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=x0.dtype)
    for t in (10, 300, 700):
        tt = torch.full((len(x0),), t)
        mc = ((eps - one.eps_fn(schedule)(diffusion.q_sample(x0, tt, eps, schedule), tt)) ** 2).mean().item()
        exact = lesson01._gaussian_loss_floor(mixture.covs[1], schedule.alpha_bars[[t]].double()).item()
        assert abs(mc - exact) < 0.01 * max(exact, 0.01) + 3e-3


def test_every_grading_says_what_it_tests():
    for item in graded.for_lesson("01_explicit_conditioning"):
        assert "TODO" not in item.grading.understanding + item.grading.shortcut


# ---------------------------------------------------------------- end-of-lesson exercises (instructor material)

def test_expected_self_consistency():
    errors = lesson01.expected_self_consistency(ts=(0, 50, 300, 700))
    assert errors[0] == max(errors.values())
    assert errors[300] < errors[0] / 10


def test_expected_rare_sweep():
    rows = lesson01.expected_rare_sweep(fractions=(0.2, 0.006))
    balanced = rows[1.0]
    assert abs(rows[0.2][1] - balanced[1]) < 0.01
    assert rows[0.006][1] > 2 * balanced[1]
    assert rows[0.2][2] > 3 * balanced[2] and rows[0.006][2] > rows[0.2][2]


def test_expected_dropout():
    fits = lesson01.expected_dropout()
    null = 3
    assert fits[0.0][null][0] > 100 * fits[0.0][null][1]
    assert fits[0.5][null][0] <= fits[0.2][null][0]
    assert sum(fits[0.5][k][0] for k in range(3)) > sum(fits[0.2][k][0] for k in range(3))
