"""Lesson 02's exercises: each graded one accepts a right answer and rejects its typical mistake;
hidden cases hold inputs the instant check never shows; the end-of-lesson functions find what the
lesson says the student should find."""

from __future__ import annotations

import math

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

from course_lib import diffusion, exercises, models, pretrained, toy, training
from instructor import exercises as graded
from instructor.exercises import classifier_guidance as ex02


def noised_logits(means, cov, weights, alpha_bar):  # from scratch
    c_t = alpha_bar * cov + (1 - alpha_bar) * torch.eye(2, dtype=cov.dtype)
    prec = torch.linalg.inv(c_t)
    W = math.sqrt(alpha_bar) * means @ prec                                  # prec is symmetric
    b = weights.log() - 0.5 * alpha_bar * torch.einsum("ki,ij,kj->k", means, prec, means)
    return W - W[0], b - b[0]


def classifier_grad_from_logits(model, x, t, y):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(model(x, t).log_softmax(1)[torch.arange(len(x)), y].sum(), x)[0]


def guided_eps(eps, grad_log_p_y, sigma_t, gamma):
    return eps - gamma * sigma_t * grad_log_p_y


def _raw_logit_grad(model, x, t, y):  # differentiates the logit, not the log-probability
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(model(x, t)[torch.arange(len(x)), y].sum(), x)[0]


RIGHT = dict(noised_logits=noised_logits, classifier_grad_from_logits=classifier_grad_from_logits,
             guided_eps=guided_eps)
WRONG = dict(
    noised_logits=lambda m, c, w, a: noised_logits(m, c, w, 1.0),            # forgets the noise: the clean classifier
    classifier_grad_from_logits=_raw_logit_grad,
    guided_eps=lambda e, g, s, gamma: e - gamma * g / s,                       # 1 / sigma_t
)


def test_the_lesson_has_these_exercises_and_no_other():
    assert [e.name for e in exercises.for_lesson("02_classifier_guidance")] == list(RIGHT)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistake_fails_public_and_hidden(name):
    wrong_fails(name, WRONG[name], public=True)


def test_noised_logits_reproduce_the_exact_posterior():
    ring, schedule = toy.ring(k=5), diffusion.make_schedule("linear", T=1000)
    x = 2 * torch.randn(50, 2, dtype=torch.float64)
    for t in (0, 300, 999):
        a = schedule.alpha_bars[t].item()
        W, b = ex02._noised_logits(ring.means, ring.covs[0], ring.weights, a)
        assert torch.allclose(torch.softmax(x @ W.T + b, dim=1), ring.noised(a).posterior(x), atol=1e-10)


def test_guided_eps_at_gamma_one_with_exact_parts_is_the_conditional_denoiser():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x, t = torch.randn(40, 2, dtype=torch.float64), torch.full((40,), 300)
    noised = mixture.noised(schedule.alpha_bars[300].item())
    grad = noised.score(x, 1) - noised.score(x)
    eps = ex02._guided_reference(mixture.eps_fn(schedule)(x, t), grad, schedule.sigmas[300].item(), 1.0)
    assert torch.allclose(eps, mixture.eps_fn(schedule, 1)(x, t), atol=1e-10)


def test_every_grading_says_what_it_tests():
    for item in graded.for_lesson("02_classifier_guidance"):
        assert "TODO" not in item.grading.understanding + item.grading.shortcut


def test_outside_contour_holds_five_per_cent_of_fresh_samples():
    mixture = toy.anisotropic()
    x, _ = mixture.sample(20_000, y=1, generator=torch.Generator().manual_seed(0))
    share = ex02.outside_contour(x, mixture, 1).double().mean().item()
    assert abs(share - 0.05) < 5 * math.sqrt(0.05 * 0.95 / 20_000)
    with pytest.raises(ValueError, match="mass"):
        ex02.outside_contour(x, mixture, 1, mass=1.0)


def test_expected_window_shares_says_where_guidance_pushes():
    shares = ex02.expected_window_shares([(0, 300), (301, 999), (0, 500), (501, 999), (300, 700)], gamma=10.0)
    assert shares[(0, 300)] < 0.06 and shares[(0, 500)] < 0.06        # late guidance: near the baseline
    assert shares[(301, 999)] > 0.9 and shares[(501, 999)] > 0.8      # early guidance alone: most samples out
    assert 0.5 < shares[(300, 700)] < 0.8                               # "about two thirds"


def test_expected_set_guidance_is_the_sampler_baseline():
    sw = ex02.expected_set_guidance((1, 2))
    assert abs(sw["guided"] - sw["sampler_baseline"]) < 1e-4
    assert sw["guided"] > sw["noise_floor"]
    with pytest.raises(ValueError, match="labels"):
        ex02.expected_set_guidance((1, 1))


def test_expected_judge_guidance_grades_differ():
    grades = ex02.expected_judge_guidance((1.0, 10.0))
    assert grades[10.0]["judge"] > grades[1.0]["judge"]
    assert all(g["classifier"] < 0.5 for g in grades.values())


def test_expected_clean_guidance_scatters_the_samples():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x, y = mixture.sample(20_000, generator=torch.Generator().manual_seed(0))
    net = training.seeded_init(1, lambda: models.NoisyClassifier2D(**pretrained.load("toy_classifier").meta["arch"]))
    training.train_classifier(net, x, y, schedule, noisy=False, steps=600, generator=torch.Generator().manual_seed(1),
                              progress=False)
    scores = ex02.expected_clean_guidance(models.FixedTimeClassifier(net, t0=0))
    target = ex02.expected_clean_guidance(pretrained.load("toy_classifier").model, (1.0,))[1.0]
    assert scores[1.0]["sw"] > 1.0 > 0.2 > target["sw"]                  # "above 1 (the noise-aware one: about 0.1)"
    assert scores[1.0]["diversity"] > 2 * 1.24                           # "more than twice the target's"
    assert scores[3.0]["off_plot"] >= 100                                # "hundreds off the plot"
