"""Lesson 06's graded exercises: the references agree with the library, right answers pass every case,
and plausible wrong answers fail at least one hidden case."""

import math

import pytest
import torch

from course_lib import diffusion, guidance, toy
from course_lib.exercises import core, in_practice
from instructor.exercises import in_practice as graded

GRADINGS = {g.name: g for g in graded._GRADING}
EXERCISES = {e.name: e for e in in_practice.EXERCISES}


def _cases(name):
    ex = EXERCISES[name]
    return ex.cases() + GRADINGS[name].hidden_cases(torch.Generator().manual_seed(123))


def _worst(name, fn):
    ref = GRADINGS[name].reference
    return max(core.difference(EXERCISES[name].run(fn, args), ref(*args), name) for args in _cases(name))


def test_every_exercise_has_its_grading_and_lesson():
    assert set(GRADINGS) == set(EXERCISES) == {"guided_gaussian", "rescale_phi", "x0_loss_guided_eps"}
    assert all(e.lesson == "06_guidance_in_practice" for e in in_practice.EXERCISES)


def test_guided_gaussian_reference_against_the_density_on_a_grid():
    for mean_a, cov_a, mean_b, cov_b, w in _cases("guided_gaussian"):
        mean, cov = GRADINGS["guided_gaussian"].reference(mean_a, cov_a, mean_b, cov_b, w)
        c = torch.linspace(-1, 1, 3, dtype=torch.float64)
        pts = mean + torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)
        log_target = (1 + w) * toy.GaussianMixture2D(mean_a[None], cov_a[None], [1.0]).log_prob(pts) \
            - w * toy.GaussianMixture2D(mean_b[None], cov_b[None], [1.0]).log_prob(pts)
        log_gauss = toy.GaussianMixture2D(mean[None], cov[None], [1.0]).log_prob(pts)
        diff = log_target - log_gauss                                  # a constant if the Gaussian is right
        assert float(diff.max() - diff.min()) < 1e-8


def test_rescale_phi_reference_hits_the_target_std():
    for eps_g, eps_c, target in _cases("rescale_phi"):
        phi = GRADINGS["rescale_phi"].reference(eps_g, eps_c, target)
        for i in range(eps_g.shape[0]):
            out = guidance.rescaled(lambda x, t: eps_g[i:i + 1], lambda x, t: eps_c[i:i + 1],
                                    min(max(float(phi[i]), 0.0), 1.0))(eps_g[i:i + 1], torch.zeros(1, dtype=torch.long))
            if 0 <= float(phi[i]) <= 1:
                assert math.isclose(float(out.std()), float(target[i]), rel_tol=1e-4)


def test_x0_loss_reference_is_loss_guidance_with_a_constant_eps():
    for eps, x_t, alpha_bar, target, weight in _cases("x0_loss_guided_eps"):
        ref = GRADINGS["x0_loss_guided_eps"].reference(eps, x_t, alpha_bar, target, weight)
        for i in range(x_t.shape[0]):
            schedule = diffusion.Schedule(torch.tensor([1 - float(alpha_bar[i])], dtype=torch.float64))
            loss = lambda x0, t, i=i: 0.5 * ((x0 - target[i:i + 1]) ** 2).flatten(1).sum(1)  # noqa: E731
            out = guidance.loss_guidance(lambda x, t, i=i: eps[i:i + 1], loss, float(weight), schedule)(
                x_t[i:i + 1], torch.zeros(1, dtype=torch.long))
            torch.testing.assert_close(out, ref[i:i + 1], rtol=1e-5, atol=1e-5)


def _gg_sign_slip(mean_a, cov_a, mean_b, cov_b, w):
    pa, pb = torch.linalg.inv(cov_a), torch.linalg.inv(cov_b)
    cov = torch.linalg.inv((1 + w) * pa + w * pb)
    return cov @ ((1 + w) * pa @ mean_a + w * pb @ mean_b), cov


def _gg_means_only(mean_a, cov_a, mean_b, cov_b, w):
    return (1 + w) * mean_a - w * mean_b, cov_a


def _phi_wrong(eps_g, eps_c, target):  # forgets the (1 - phi) part of the mix
    dims = list(range(1, eps_g.ndim))
    return target / eps_c.std(dim=dims)


def _loss_no_chain(eps, x_t, alpha_bar, target, weight):  # forgets 1 / sqrt(alpha_bar)
    ab = alpha_bar.to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
    x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    return eps + weight * (1 - ab).sqrt() * (x0 - target)


def _loss_wrong_sign(eps, x_t, alpha_bar, target, weight):
    return 2 * eps - GRADINGS["x0_loss_guided_eps"].reference(eps, x_t, alpha_bar, target, weight)


@pytest.mark.parametrize("name,wrong", [("guided_gaussian", _gg_sign_slip), ("guided_gaussian", _gg_means_only),
                                        ("rescale_phi", _phi_wrong), ("x0_loss_guided_eps", _loss_no_chain),
                                        ("x0_loss_guided_eps", _loss_wrong_sign)])
def test_wrong_answers_fail(name, wrong):
    assert _worst(name, wrong) > EXERCISES[name].tolerance


@pytest.mark.parametrize("name", ["guided_gaussian", "rescale_phi", "x0_loss_guided_eps"])
def test_the_reference_passes_and_a_stub_raises(name):
    assert _worst(name, GRADINGS[name].reference) == 0.0

    def stub(*args):
        raise NotImplementedError(name)

    with pytest.raises(NotImplementedError):
        EXERCISES[name].run(stub, EXERCISES[name].cases()[0])
