"""Lesson 05's graded exercises: right answers pass every case, typical mistakes fail the instant check;
the end-of-lesson helpers find what the exercises say."""

import math
import time

import torch

from course_lib import exercises, toy
from course_lib.exercises import since_2022
from test_checks import assert_right_and_wrong


def interval_eps(eps_guided, eps_plain, t, t_lo, t_hi):
    inside = ((t >= t_lo) & (t <= t_hi)).reshape(-1, *([1] * (eps_guided.ndim - 1)))
    return torch.where(inside, eps_guided, eps_plain)


def gaussian_product(mean_a, cov_a, mean_b, cov_b):
    prec_a, prec_b = torch.linalg.inv(cov_a), torch.linalg.inv(cov_b)
    cov = torch.linalg.inv(prec_a + prec_b)
    mean = cov @ (prec_a @ mean_a + prec_b @ mean_b)
    s = cov_a + cov_b
    d = mean_a - mean_b
    log_scale = -0.5 * (d @ torch.linalg.solve(s, d) + torch.logdet(s)) - math.log(2 * math.pi)
    return mean, cov, float(log_scale)


def langevin_step_size(score, noise, snr):
    s = score.reshape(len(score), -1).norm(dim=1).mean()
    z = noise.reshape(len(noise), -1).norm(dim=1).mean()
    return float(2 * (snr * z / s) ** 2)


def flow_velocity(eps, x, tau):
    tau = tau.reshape(-1, *([1] * (x.ndim - 1)))
    return (eps - x) / (1 - tau)


def test_interval_eps():
    assert_right_and_wrong("interval_eps", interval_eps,  # an open window: the ends get the plain prediction
                           lambda g, p, t, lo, hi: interval_eps(g, p, t, lo + 1, hi - 1))


def test_gaussian_product():
    assert_right_and_wrong("gaussian_product", gaussian_product,  # covariances added instead of precisions
                           lambda ma, ca, mb, cb: (gaussian_product(ma, ca, mb, cb)[0], ca + cb,
                                                   gaussian_product(ma, ca, mb, cb)[2]))


def test_langevin_step_size():
    assert_right_and_wrong("langevin_step_size", langevin_step_size,  # forgets the square
                           lambda s, z, r: float(2 * r * z.reshape(len(z), -1).norm(dim=1).mean()
                                                 / s.reshape(len(s), -1).norm(dim=1).mean()))


def test_flow_velocity():
    assert_right_and_wrong("flow_velocity", flow_velocity,  # the velocity of eps alone, x0's part forgotten
                           lambda eps, x, tau: eps)


def test_every_case_is_cheap():
    for exercise in exercises.for_lesson(since_2022.LESSON):
        start = time.perf_counter()
        for args in exercise.hidden_cases(torch.Generator().manual_seed(0)):
            exercise.reference(*args)
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
