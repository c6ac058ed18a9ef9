"""Lesson 00's graded exercises: a from-scratch answer passes the public and hidden cases, the typical
mistake fails both, the references agree with the library and with Monte Carlo, and each exercise
names its library twins."""

from __future__ import annotations

import math

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

from course_lib import diffusion, exercises, toy
from instructor import exercises as graded


def renoise(x_s, a_s, a_t, eps):
    r = a_t / a_s
    return math.sqrt(r) * x_s + math.sqrt(1 - r) * eps


def bayes_accuracy(mu, std, weight, alpha_bars):
    ab = alpha_bars.double()
    m, v = ab.sqrt() * mu, ab * std**2 + 1 - ab
    c = v * math.log((1 - weight) / weight) / (2 * m)
    normal = torch.distributions.Normal(0.0, 1.0)
    return (weight * normal.cdf((m - c) / v.sqrt()) + (1 - weight) * normal.cdf((m + c) / v.sqrt())).to(alpha_bars.dtype)


def gaussian_eps(x_t, a, mean, cov):
    c_t = a * cov + (1 - a) * torch.eye(2, dtype=cov.dtype)
    return (math.sqrt(1 - a) * torch.linalg.solve(c_t, (x_t.to(cov.dtype) - math.sqrt(a) * mean).T).T).to(x_t.dtype)


def ddim_as_euler(x_t, eps, a_t, a_s):
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    return math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps


RIGHT = dict(renoise=renoise, bayes_accuracy=bayes_accuracy, gaussian_eps=gaussian_eps, ddim_as_euler=ddim_as_euler)
WRONG = dict(
    renoise=lambda x_s, a_s, a_t, eps: math.sqrt(a_t) * x_s + math.sqrt(1 - a_t) * eps,          # jumps as if from x_0
    bayes_accuracy=lambda mu, std, w, ab: bayes_accuracy(mu, std, 0.5, ab),                     # ignores the prior
    gaussian_eps=lambda x, a, m, c: gaussian_eps(x, a, m, c) * math.sqrt(1 - a),                # variance for std
    ddim_as_euler=lambda x, e, a_t, a_s: math.sqrt(a_s / a_t) * x,                              # drops the eps term
)


def _cases(name, seed):
    item = graded.get(name)
    return item.exercise.cases(), item.grading.hidden_cases(torch.Generator().manual_seed(seed))


def test_the_lesson_has_these_exercises_and_no_other():
    assert [e.name for e in exercises.for_lesson("00_diffusion_refresher")] == list(RIGHT)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistake_fails_public_and_hidden(name):
    wrong_fails(name, WRONG[name], public=True)


def test_twins_name_the_library_functions_that_would_answer():
    assert "course_lib.toy.GaussianMixture2D.eps_fn" in exercises.get("gaussian_eps").twins
    assert "course_lib.diffusion.ddim_step" in exercises.get("ddim_as_euler").twins


def test_references_agree_with_the_library():
    schedule, mixture = diffusion.make_schedule("linear", T=1000), toy.anisotropic()
    x = torch.randn(20, 2, dtype=torch.float64)
    t, s = 600, 550
    a_t, a_s = schedule.alpha_bars[t].item(), schedule.alpha_bars[s].item()
    eps = mixture.eps_fn(schedule)(x, torch.full((20,), t))
    assert torch.allclose(graded.get("ddim_as_euler").grading.reference(x, eps, a_t, a_s),
                          diffusion.ddim_step(x, eps, t, s, schedule, eta=0.0))
    assert torch.allclose(graded.get("gaussian_eps").grading.reference(x, a_t, mixture.means[1], mixture.covs[1]),
                          mixture.eps_fn(schedule, y=1)(x, torch.full((20,), t)))


def test_bayes_accuracy_matches_monte_carlo_and_its_limits():
    reference = graded.get("bayes_accuracy").grading.reference
    schedule = diffusion.make_schedule("linear", T=1000)
    mu, std, w = 1.5, 0.8, 0.3
    two = toy.GaussianMixture2D(torch.tensor([[-mu, 0.0], [mu, 0.0]]), torch.eye(2).expand(2, 2, 2) * std**2,
                                torch.tensor([1 - w, w]))
    for t in (0, 300):
        a = schedule.alpha_bars[t].item()
        x, y = two.noised(a).sample(200_000, generator=torch.Generator().manual_seed(t))
        mc = (two.noised(a).posterior(x).argmax(1) == y).double().mean().item()
        assert abs(reference(mu, std, w, torch.tensor([a], dtype=torch.float64)).item() - mc) < 0.004
    end = reference(mu, std, w, schedule.alpha_bars[-1:].double()).item()
    assert abs(end - max(w, 1 - w)) < 1e-3                 # pure noise: guess the larger class


def test_renoise_composes_with_q_sample_into_the_forward_law():
    schedule, gen = diffusion.make_schedule("linear", T=1000), torch.Generator().manual_seed(0)
    x0 = torch.zeros(200_000, 2, dtype=torch.float64)
    s, t = 100, 400
    x_s = diffusion.q_sample(x0, torch.full((len(x0),), s), torch.randn(x0.shape, generator=gen, dtype=torch.float64),
                             schedule)
    x_t = graded.get("renoise").grading.reference(x_s, schedule.alpha_bars[s].item(), schedule.alpha_bars[t].item(),
                                                  torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    left = x_t / schedule.sigmas[t].item()
    assert left.mean(0).abs().max() < 0.01 and (left.std(0) - 1).abs().max() < 0.01


def test_every_grading_says_what_it_tests():
    for item in graded.for_lesson("00_diffusion_refresher"):
        assert "TODO" not in item.grading.understanding + item.grading.shortcut


# ---------------------------------------------------------------- end-of-lesson exercises (instructor material)

from instructor.exercises import diffusion_refresher as lesson00  # noqa: E402


def test_expected_eta_sweep():
    rows = lesson00.expected_eta_sweep()
    assert all(abs(rows[50, eta][0] - rows[50, 0.0][0]) < 0.02 for eta in (0.5, 1.0))
    assert rows[20, 1.0][0] > max(rows[20, 0.0][0], rows[20, 0.5][0])
    assert rows[20, 1.0][1] < rows[20, 0.0][1]


def test_expected_schedule_rows():
    linear, cosine = lesson00.expected_schedule_rows("linear"), lesson00.expected_schedule_rows("cosine")
    for steps in ("DDIM, 20 steps", "DDIM, 10 steps"):
        assert cosine[steps][1] > linear[steps][1]
    for name in ("DDPM, 1000 steps", "DDIM, 50 steps"):
        assert abs(cosine[name][0] - linear[name][0]) < 0.02


def test_expected_identity_step():
    assert 450 <= lesson00.expected_identity_step() <= 500
