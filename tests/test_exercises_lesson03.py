"""Lesson 03's exercises: each graded one accepts a right answer and rejects its typical mistake
on the public or the hidden cases; the end-of-lesson functions find what the lesson says."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import diffusion, exercises, toy
from course_lib.exercises import classifier_free_guidance as ex03


def cfg_eps(c, u, w):
    return (1 + w) * c - w * u


def diffusers_eps(c, u, s):
    return u + s * (c - u) if s > 1 else c


def implicit_grad(model, x, t, y, schedule):
    with torch.no_grad():
        eps_y = model(x, t, torch.full_like(t, y))
        eps_null = model(x, t, torch.full_like(t, model.num_classes))
    return (eps_null - eps_y) / schedule.sigmas[t][:, None]


def cfg_x0_guess(x_t, c, u, alpha_bar, w):
    return (x_t - math.sqrt(1 - alpha_bar) * cfg_eps(c, u, w)) / math.sqrt(alpha_bar)


RIGHT = dict(cfg_eps=cfg_eps, diffusers_eps=diffusers_eps, implicit_grad=implicit_grad, cfg_x0_guess=cfg_x0_guess)
WRONG = dict(
    cfg_eps=lambda c, u, w: w * c - (w - 1) * u,                        # the weights swapped
    diffusers_eps=lambda c, u, s: u + s * (c - u),                        # guidance_scale <= 1 taken as CFG too
    implicit_grad=lambda m, x, t, y, s: -implicit_grad(m, x, t, y, s),   # y minus null
    cfg_x0_guess=lambda x, c, u, a, w: (x - math.sqrt(1 - a) * c) / math.sqrt(a),  # the unguided guess
)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    exercise = exercises.get(name)
    assert exercise.lesson == ex03.LESSON
    for seed in (0, 7):
        gen = torch.Generator().manual_seed(seed)
        cases = exercise.public_cases(gen) + exercise.hidden_cases(gen)
        assert max(exercise.errors(RIGHT[name], cases)) <= exercise.tolerance


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistake_fails_hidden(name):
    exercise = exercises.get(name)
    cases = exercise.hidden_cases(torch.Generator().manual_seed(3))
    assert max(exercise.errors(WRONG[name], cases)) > 100 * exercise.tolerance


def test_hidden_cases_show_what_public_ones_do_not():
    gen = torch.Generator().manual_seed(0)
    public_w = {args[2] for args in exercises.get("cfg_eps").public_cases(gen)}
    hidden_w = {args[2] for args in exercises.get("cfg_eps").hidden_cases(gen)}
    assert {-1.0, 0.0} <= hidden_w and not {-1.0, 0.0} & public_w
    assert all(args[2] > 1 for args in exercises.get("diffusers_eps").public_cases(gen))
    assert any(args[2] <= 1 for args in exercises.get("diffusers_eps").hidden_cases(gen))
    hidden_t = torch.cat([args[2] for args in exercises.get("implicit_grad").hidden_cases(gen)])
    assert {0, 999} <= set(hidden_t.tolist())


def test_implicit_grad_public_cases_use_the_exact_oracle():
    for args in exercises.get("implicit_grad").public_cases(torch.Generator().manual_seed(0)):
        assert isinstance(args[0], toy.OracleDenoiser)


def test_diffusers_eps_is_the_conditional_branch_at_scale_one_or_below():
    c, u = torch.randn(4, 2), torch.randn(4, 2)
    for s in (0.0, 0.5, 1.0):
        assert torch.equal(ex03._diffusers(c, u, s), c)
    assert torch.allclose(ex03._diffusers(c, u, 7.5), cfg_eps(c, u, 6.5))


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
