"""Lesson 02's exercises: each graded one accepts a right answer and rejects its typical mistake;
hidden cases hold inputs the instant check never shows; the end-of-lesson functions find what the
lesson says the student should find."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import diffusion, exercises, models, pretrained, toy, training
from course_lib.exercises import classifier_guidance as ex02


def noised_posterior_grad(means, covs, weights, alpha_bar, x, y):  # from scratch, no course_lib
    m = math.sqrt(alpha_bar) * means                                        # [K, 2]
    c = alpha_bar * covs + (1 - alpha_bar) * torch.eye(2, dtype=covs.dtype)  # [K, 2, 2]
    prec = torch.linalg.inv(c)
    d = x[:, None, :] - m                                                   # [n, K, 2]
    log_joint = (weights.log() - 0.5 * torch.logdet(c) - 0.5 * torch.einsum("nki,kij,nkj->nk", d, prec, d))
    post = log_joint.softmax(dim=1)                                         # [n, K]
    scores = -torch.einsum("kij,nkj->nki", prec, d)                         # [n, K, 2] score of each component
    y = torch.as_tensor(y).expand(x.shape[0])
    return scores[torch.arange(x.shape[0]), y] - (post[..., None] * scores).sum(1)


def grad_log_classifier(log_prob_fn, x, t, y):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(log_prob_fn(x, t)[torch.arange(len(x)), y].sum(), x)[0]


def guided_eps(eps, grad_log_p_y, sigma_t, gamma):
    return eps - gamma * sigma_t * grad_log_p_y


def _clean_grad(means, covs, weights, alpha_bar, x, y):  # forgets the noise: the clean mixture's gradient
    return noised_posterior_grad(means, covs, weights, 1.0, x, y)


RIGHT = dict(noised_posterior_grad=noised_posterior_grad, grad_log_classifier=grad_log_classifier,
             guided_eps=guided_eps)
WRONG = dict(
    noised_posterior_grad=_clean_grad,
    grad_log_classifier=lambda f, x, t, y: grad_log_classifier(f, x, t, torch.zeros_like(y)),  # one label for all
    guided_eps=lambda e, g, s, gamma: e - gamma * g / s,                                       # 1 / sigma_t
)


def _all_cases(exercise, seed):
    gen = torch.Generator().manual_seed(seed)
    return exercise.public_cases(gen) + exercise.hidden_cases(gen)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    exercise = exercises.get(name)
    assert exercise.lesson == ex02.LESSON
    for seed in (0, 7):
        assert max(exercise.errors(RIGHT[name], _all_cases(exercise, seed))) <= exercise.tolerance


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistake_fails_public_and_hidden(name):
    exercise = exercises.get(name)
    gen = torch.Generator().manual_seed(3)
    assert max(exercise.errors(WRONG[name], exercise.public_cases(gen))) > 100 * exercise.tolerance
    assert max(exercise.errors(WRONG[name], exercise.hidden_cases(gen))) > 100 * exercise.tolerance


def test_hidden_cases_show_what_public_ones_do_not():
    gen = torch.Generator().manual_seed(0)
    linear = diffusion.make_schedule("linear", T=1000)
    public = exercises.get("noised_posterior_grad").public_cases(gen)
    hidden = exercises.get("noised_posterior_grad").hidden_cases(gen)
    edge = {linear.alpha_bars[0].item(), linear.alpha_bars[999].item()}
    assert edge <= {args[3] for args in hidden} and not edge & {args[3] for args in public}
    assert min(args[4].shape[0] for args in hidden) == 1 > 0
    assert {args[0].shape[0] for args in hidden} - {args[0].shape[0] for args in public}   # another mixture
    public_gamma = {args[3] for args in exercises.get("guided_eps").public_cases(gen)}
    hidden_gamma = {args[3] for args in exercises.get("guided_eps").hidden_cases(gen)}
    assert 0.0 in hidden_gamma and 0.0 not in public_gamma
    hidden_t = torch.cat([args[3] for args in exercises.get("grad_log_classifier").hidden_cases(gen)])
    assert {0, 999} <= set(hidden_t.tolist())


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
