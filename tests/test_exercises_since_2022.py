"""Lesson 05's graded exercises: right answers pass every case, typical mistakes fail the hidden cases;
the end-of-lesson helpers find what the exercises ask about."""

import math
import time

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

from course_lib import diffusion, exercises, guidance, toy
from course_lib.exercises import since_2022 as public05
from instructor import exercises as graded
from instructor.exercises import since_2022


def autoguidance_repair_weight(var, delta_good, delta_bad):
    good, bad = 1 / (var + delta_good**2), 1 / (var + delta_bad**2)
    return (1 / var - good) / (good - bad)


def corrector_scale(gamma, gamma_predictor):
    return 2 * gamma - gamma_predictor


def gaussian_product(mean_a, cov_a, mean_b, cov_b):
    prec_a, prec_b = torch.linalg.inv(cov_a), torch.linalg.inv(cov_b)
    cov = torch.linalg.inv(prec_a + prec_b)
    mean = cov @ (prec_a @ mean_a + prec_b @ mean_b)
    joint, d = cov_a + cov_b, mean_a - mean_b
    log_scale = -0.5 * (d @ torch.linalg.solve(joint, d) + torch.logdet(joint)) - math.log(2 * math.pi)
    return mean, (cov + cov.T) / 2, float(log_scale)


def flow_velocity_from_vp(eps, x_t, alpha_bar):
    a = alpha_bar.reshape(-1, *([1] * (x_t.ndim - 1)))
    return eps - (x_t - (1 - a).sqrt() * eps) / a.sqrt()


RIGHT = dict(autoguidance_repair_weight=autoguidance_repair_weight, corrector_scale=corrector_scale,
             gaussian_product=gaussian_product, flow_velocity_from_vp=flow_velocity_from_vp)
WRONG = dict(
    autoguidance_repair_weight=[lambda v, g, b: g**2 / (b**2 - g**2),                   # variances, not precisions
                                lambda v, g, b: 1.0],
    corrector_scale=[lambda g, p: 2 * g - 1, lambda g, p: g],                           # the paper's case; no change
    gaussian_product=[lambda ma, ca, mb, cb: (*gaussian_product(ma, ca, mb, cb)[:2], 0.0),   # scale forgotten
                      lambda ma, ca, mb, cb: ((ma + mb) / 2, (ca + cb) / 4, gaussian_product(ma, ca, mb, cb)[2])],
    flow_velocity_from_vp=[lambda e, x, a: (e - x) / (1 - ((1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())))[:, None],
                           lambda e, x, a: e],                                          # the same-path conversion
)


def test_the_lesson_has_four_graded_exercises():
    assert {e.name for e in exercises.for_lesson(public05.LESSON)} == set(RIGHT)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistakes_fail_hidden(name):
    wrong_fails(name, WRONG[name])


def test_the_repair_weight_makes_autoguidance_exact_at_t0():
    """At the weight, autoguidance of two blurred copies of a Gaussian class has the class's own score at t = 0."""
    mixture = toy.GaussianMixture2D(torch.zeros(1, 2), 0.3 * torch.eye(2)[None], torch.ones(1))
    schedule = diffusion.make_schedule("linear", T=1000)
    w = autoguidance_repair_weight(0.3, 0.2, 0.4)
    t, x = torch.zeros(5, dtype=torch.long), torch.randn(5, 2, dtype=torch.float64)
    fn = guidance.autoguidance(mixture.broadened(0.2).eps_fn(schedule), mixture.broadened(0.4).eps_fn(schedule), w)
    assert torch.allclose(fn(x, t), mixture.eps_fn(schedule)(x, t), rtol=1e-3, atol=1e-6)   # t = 0 is alpha_bar < 1


def test_every_case_is_cheap():
    for exercise in graded.for_lesson(public05.LESSON):
        start = time.perf_counter()
        for args in exercise.grading.hidden_cases(torch.Generator().manual_seed(0)):
            exercise.grading.reference(*args)
        assert time.perf_counter() - start < 1.0, exercise.name


def test_end_of_lesson_findings():
    mix = toy.anisotropic()
    whole, none = since_2022.interval_sweep(mix, 1, 3.0, [(0, 999), (1000, 1000)], n=600, steps=25)
    assert none < whole                       # unguided (w = 0 everywhere) is closer to p(x | y) than CFG at w = 3
    (_, gap_0), (_, gap_1) = since_2022.autoguidance_sweep(toy.branches(depth=3), 0, 0.1, 0.2, [0.0, 1.0], n=600,
                                                           steps=25)
    assert gap_1 < 0.7 * gap_0                # guiding a blurred good model by a blurrier one empties the gaps
    everywhere, late_only = since_2022.corrector_sweep(mix, 1, 3.0, [0, 600], n=500, steps=25, corrector_steps=5)
    assert everywhere < 0.5 * late_only       # the corrector's work is done at small t
