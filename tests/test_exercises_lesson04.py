"""Lesson 04's exercises: each graded one accepts a right answer and rejects its typical mistakes on the
hidden cases; the end-of-lesson functions find what the exercises ask about."""

from __future__ import annotations

import math

import pytest
import torch

from exercise_asserts import right_passes, wrong_fails

import course_lib
from course_lib import diffusion, exercises, toy
from course_lib.exercises import tradeoff as public04
from instructor import exercises as graded
from instructor.exercises import tradeoff as ex04


def frechet_of_shrinkage(mean, cov, centre, c):
    return (1 - c) ** 2 * float(((centre.double() - mean.double()) ** 2).sum() + torch.trace(cov.double()))


def ddim_shrink(var, schedule, steps, eta_noise=False):
    ts = diffusion.ddim_timesteps(steps, schedule.T)
    factor = 1.0
    for i, t in enumerate(ts):
        a = float(schedule.alpha_bars[t])
        a_prev = float(schedule.alpha_bars[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        sigma = math.sqrt(1 - a)
        x0_gain = math.sqrt(a) * var / (a * var + sigma**2)       # E[x0 | x_t] / x_t
        eps_gain = sigma / (a * var + sigma**2)                    # E[eps | x_t] / x_t
        factor *= math.sqrt(a_prev) * x0_gain + math.sqrt(1 - a_prev) * eps_gain
    return factor / math.sqrt(var)


def leak_repair_weight(lam):
    return lam / (1 - lam)


RIGHT = dict(frechet_of_shrinkage=frechet_of_shrinkage, ddim_shrink=ddim_shrink, leak_repair_weight=leak_repair_weight)
WRONG = dict(
    frechet_of_shrinkage=[lambda m, s, a, c: (1 - c**2) * float(torch.trace(s.double()) + ((a - m) ** 2).sum()),
                          lambda m, s, a, c: (1 - c) ** 2 * float(((a - m) ** 2).sum())],       # no trace term
    ddim_shrink=[lambda v, s, k: ddim_shrink(v, s, k) * math.sqrt(v),                         # not per unit std
                 lambda v, s, k: 1.0],                                                        # "DDIM is exact"
    leak_repair_weight=[lambda lam: lam, lambda lam: 1 / (1 - lam)],
)


def test_the_lesson_has_three_graded_exercises():
    assert [e.name for e in exercises.for_lesson(public04.LESSON)] == ["frechet_of_shrinkage", "ddim_shrink",
                                                                       "leak_repair_weight"]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name):
    right_passes(name, RIGHT[name])


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistakes_fail_hidden(name):
    wrong_fails(name, WRONG[name])


def test_ddim_shrinks_and_more_steps_shrink_less():
    schedule = diffusion.make_schedule("linear", T=1000)
    factors = [ddim_shrink(0.25, schedule, k) for k in (10, 50, 1000)]
    assert factors[0] < factors[1] < factors[2] < 1.0 + 1e-3


def test_leaky_mixture_leaks_the_share_it_is_given():
    mixture = toy.anisotropic()
    leaky = public04.leaky_mixture(mixture, 1, 0.3)
    x, _ = leaky.sample(20_000, generator=torch.Generator().manual_seed(0))
    from_class_1 = (mixture.posterior(x.double()).argmax(1) == 1).double().mean().item()
    assert abs(leaky.weights[1].item() - (0.7 + 0.3 * mixture.weights[1].item())) < 1e-12
    assert from_class_1 < 0.95
    with pytest.raises(ValueError, match="lam"):
        public04.leaky_mixture(mixture, 1, 1.0)


def test_expected_sampler_optima_match_exercise_2():
    found = ex04.expected_sampler_optima((10, 20, 50, 200))
    diversities = [found[s][1] for s in (10, 20, 50, 200)]
    assert diversities == sorted(diversities)                          # rises with the number of steps
    exact = toy.anisotropic().sample(1000, 1, generator=torch.Generator().manual_seed(0))[0]
    assert diversities[-1] < course_lib.sample_metrics.mean_pairwise_distance(exact) * 1.02   # towards the exact value
    assert found[10][0] < 0 and found[20][0] < 0                       # negative at 10 and 20 steps
    assert found[50][0] == 0.0 and found[200][0] == 0.0                # 0 from 50 steps on


def test_expected_leak_optima_match_exercise_3():
    found = ex04.expected_leak_optima((0.1, 0.2, 0.3, 0.4))
    best = [found[lam] for lam in (0.1, 0.2, 0.3, 0.4)]
    assert best == sorted(best) and best[0] < best[-1]                 # grows with lam
    assert all(found[lam] > leak_repair_weight(lam) for lam in found)  # above the blend's repair weight


def test_expected_mnist_optima_match_exercise_1():
    found = ex04.expected_mnist_optima((1,), ws=(0.0, 0.5, 1.0, 2.0, 5.0))[1]
    assert min(found, key=found.get) == 1.0                            # the best w at 1
    assert found[0.0] > 2 * found[1.0] and found[5.0] > 2 * found[1.0]      # more than twice the minimum
