"""Lesson 03's exercises: each graded one accepts a right answer and rejects its typical mistakes on
the public or the hidden cases; the end-of-lesson functions find what the exercises ask about."""

from __future__ import annotations

import math

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

from course_lib import diffusion, exercises, toy
from course_lib.exercises import classifier_free_guidance as public03
from instructor import exercises as graded
from instructor.exercises import classifier_free_guidance as ex03


def implicit_log_odds(model, x, t, y, y_other, schedule):
    with torch.no_grad():
        eps_y = model(x, t, torch.full_like(t, y))
        eps_other = model(x, t, torch.full_like(t, y_other))
    return (eps_other - eps_y) / schedule.sigmas[t][:, None]


def cfg_x0_guess(x_t, c, u, alpha_bar, w):
    return (x_t - math.sqrt(1 - alpha_bar) * ((1 + w) * c - w * u)) / math.sqrt(alpha_bar)


def _component_scores(x, means, var, weights, alpha_bar, noised=True):
    m = math.sqrt(alpha_bar) * means if noised else means
    v = alpha_bar * var + 1 - alpha_bar if noised else var
    x = x.double()[:, None]
    log_joint = weights.log() - 0.5 * (x - m) ** 2 / v
    return -(x - m) / v, torch.softmax(log_joint, dim=1)


def cfg_score_1d(x, means, var, weights, y, w, alpha_bar, noised=True):
    scores, post = _component_scores(x, means, var, weights, alpha_bar, noised)
    return (1 + w) * scores[:, y] - w * (post * scores).sum(1)


RIGHT = dict(implicit_log_odds=implicit_log_odds, cfg_x0_guess=cfg_x0_guess, cfg_score_1d=cfg_score_1d)
WRONG = dict(
    implicit_log_odds=[lambda m, x, t, y, o, s: -implicit_log_odds(m, x, t, y, o, s),           # sign
                       lambda m, x, t, y, o, s: implicit_log_odds(m, x, t, y, m.num_classes, s)],  # null, not y'
    cfg_x0_guess=[lambda x, c, u, a, w: (x - math.sqrt(1 - a) * c) / math.sqrt(a)],                # unguided guess
    cfg_score_1d=[lambda *a: cfg_score_1d(*a, noised=False),                                        # the t = 0 tilt
                  lambda x, m, v, p, y, w, a: cfg_score_1d(x, m, v, p, y, -w, a)],                 # swapped weights
)


def test_every_exercise_of_the_lesson_is_here():
    assert {e.name for e in exercises.for_lesson(public03.LESSON)} == set(RIGHT)
    for name in RIGHT:
        assert exercises.get(name).twins or name == "cfg_x0_guess"


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistakes_fail_hidden(name):
    wrong_fails(name, WRONG[name])


def test_cfg_score_1d_at_t0_is_the_tilt_and_at_w0_the_class():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    means, weights = torch.tensor([-1.0, 1.5], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64)
    tilt = ex03._score_1d_reference(x, means, 0.5, weights, 1, 2.0, 1.0)
    assert torch.allclose(tilt, cfg_score_1d(x, means, 0.5, weights, 1, 2.0, 1.0, noised=False))
    at_zero = ex03._score_1d_reference(x, means, 0.5, weights, 1, 0.0, 0.3)
    assert torch.allclose(at_zero, -(x - math.sqrt(0.3) * 1.5) / (0.3 * 0.5 + 0.7))


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    return toy.anisotropic(), diffusion.make_schedule("linear", T=1000)


def test_cfg_samples_are_more_class_y_than_the_tilt(setup):
    mixture, schedule = setup
    tilt, cfg = ex03.posterior_of_samples(mixture, 1, 3.0, schedule, n=400)
    assert 0.9 < tilt < cfg <= 1.0


def test_interpolation_is_not_the_geometric_mixture(setup):
    mixture, schedule = setup
    gap, floor = ex03.interpolation_gap(mixture, 1, -0.5, schedule, n=400)
    assert gap > 3 * floor
    with pytest.raises(ValueError, match="w must lie"):
        ex03.interpolation_gap(mixture, 1, 0.5, schedule)


def test_few_step_ddim_shrinks_the_class(setup):
    mixture, schedule = setup
    d = ex03.sampler_baseline_diversity(mixture, 1, schedule, steps=(10, 50, None), n=500)
    assert d["DDIM 10"] < d["DDIM 50"] < d["DDPM"]
    assert d["DDIM 10"] < 0.9 * d["exact"] and abs(d["DDPM"] - d["exact"]) < 0.1 * d["exact"]


def test_zero_shot_classifier_beats_chance():
    from course_lib import data, pretrained

    torch.set_num_threads(1)
    shipped = pretrained.load("mnist_cfg")
    x_test, y_test = data.load_mnist("test")
    x, y = data.balanced_subset(x_test, y_test, 2)
    acc = ex03.zero_shot_accuracy(shipped.model, shipped.schedule, x, y, ts=(300, 500), draws=1)
    assert set(acc) == {300, 500, "all"} and acc["all"] > 0.4        # chance is 0.1
