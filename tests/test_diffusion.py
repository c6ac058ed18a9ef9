"""Schedules, the forward process and the samplers, checked against exact answers."""

import math

import pytest
import torch

from course_lib import diffusion, toy
from course_lib.metrics import sliced_wasserstein


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [10, 1000])
def test_schedule_invariants(kind, T):
    s = diffusion.make_schedule(kind, T)
    assert s.T == T and s.betas.shape == s.alphas.shape == s.alpha_bars.shape == (T,)
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    assert 0 < s.alpha_bars[-1] < 0.05 and 0.95 < s.alpha_bars[0] < 1
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    torch.testing.assert_close(s.sigmas, (1 - s.alpha_bars).sqrt())


def test_linear_schedule_endpoints_at_T_1000():
    s = diffusion.make_schedule("linear", 1000)
    assert math.isclose(float(s.betas[0]), 1e-4) and math.isclose(float(s.betas[-1]), 0.02)


@pytest.mark.parametrize("kind, T", [("quadratic", 100), ("linear", 1), ("linear", 10.0)])
def test_bad_schedule_raises(kind, T):
    with pytest.raises(ValueError, match="kind|T must"):
        diffusion.make_schedule(kind, T)


def test_schedule_rejects_bad_betas():
    with pytest.raises(ValueError, match="betas"):
        diffusion.Schedule(torch.tensor([0.1, 1.2]))


def test_q_sample_formula_and_checks():
    s = diffusion.make_schedule("linear", 100)
    x0, noise = torch.randn(4, 2), torch.randn(4, 2)
    t = torch.tensor([0, 10, 50, 99])
    a = s.alpha_bars[t].float()[:, None]
    torch.testing.assert_close(diffusion.q_sample(x0, t, noise, s), a.sqrt() * x0 + (1 - a).sqrt() * noise)
    with pytest.raises(ValueError, match="t must lie in 0..99"):
        diffusion.q_sample(x0, torch.tensor([0, 1, 2, 100]), noise, s)
    with pytest.raises(ValueError, match="noise must"):
        diffusion.q_sample(x0, t, torch.randn(4, 3), s)
    with pytest.raises(ValueError, match="one entry per sample"):
        diffusion.q_sample(x0, t[:3], noise, s)


def test_score_eps_round_trip():
    s = diffusion.make_schedule("cosine", 50)
    eps, t = torch.randn(5, 2), torch.tensor([0, 3, 10, 30, 49])
    score = diffusion.score_from_eps(eps, t, s)
    torch.testing.assert_close(score, -eps / s.sigmas[t].float()[:, None])
    torch.testing.assert_close(diffusion.eps_from_score(score, t, s), eps)


def test_ddim_timesteps():
    assert diffusion.ddim_timesteps(5, 1000) == [999, 749, 500, 250, 0]
    assert diffusion.ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="steps must be an integer in 1..10"):
        diffusion.ddim_timesteps(11, 10)


MIX = toy.GaussianMixture2D([[-1.5, 0.3], [1.0, -0.6], [0.2, 1.4]],
                            [[[0.4, 0.15], [0.15, 0.3]], [[0.2, 0.0], [0.0, 0.6]], [[0.5, -0.2], [-0.2, 0.25]]],
                            [0.55, 0.3, 0.15])


@pytest.mark.parametrize("steps, eta", [(None, 1.0), (50, 0.0), (50, 1.0), (20, 0.0)])
def test_sampler_with_exact_eps_reproduces_the_mixture(steps, eta):
    """The exact denoiser through each sampler gives the mixture, within the
    distance between two independent exact samples (the sampling-noise floor)."""
    s = diffusion.make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    n = 3000
    out = diffusion.sample(MIX.eps_fn(s), (n, 2), s, steps=steps, eta=eta, generator=g)
    ref, _ = MIX.sample(n, generator=g)
    ref2, _ = MIX.sample(n, generator=g)
    floor = sliced_wasserstein(ref, ref2)
    assert sliced_wasserstein(out, ref) < 2 * floor + 0.03
    # the test can fail: the prior N(0, I) is far from the mixture
    assert sliced_wasserstein(torch.randn(n, 2, generator=g), ref) > 2 * floor + 0.03


def test_conditional_sampling_with_exact_eps():
    s = diffusion.make_schedule("cosine", 200)
    g = torch.Generator().manual_seed(1)
    out = diffusion.sample(MIX.eps_fn(s, y=2), (2000, 2), s, steps=40, eta=0.0, generator=g)
    ref, _ = MIX.sample(2000, y=2, generator=g)
    ref2, _ = MIX.sample(2000, y=2, generator=g)
    assert sliced_wasserstein(out, ref) < 2 * sliced_wasserstein(ref, ref2) + 0.03


def test_trajectory_shape_and_endpoints():
    s = diffusion.make_schedule("linear", 100)
    x0, traj = diffusion.sample(MIX.eps_fn(s), (7, 2), s, steps=10, eta=0.0,
                                generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert traj.shape == (11, 7, 2)
    torch.testing.assert_close(traj[-1], x0)
    _, traj = diffusion.sample(MIX.eps_fn(s), (3, 2), s, return_trajectory=True)
    assert traj.shape == (101, 3, 2)


def test_same_seed_same_samples_and_x_T_reuse():
    s = diffusion.make_schedule("linear", 100)
    a = diffusion.sample(MIX.eps_fn(s), (50, 2), s, generator=torch.Generator().manual_seed(5))
    b = diffusion.sample(MIX.eps_fn(s), (50, 2), s, generator=torch.Generator().manual_seed(5))
    c = diffusion.sample(MIX.eps_fn(s), (50, 2), s, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    x_T = torch.randn(50, 2)
    d1 = diffusion.sample(MIX.eps_fn(s), (50, 2), s, steps=10, eta=0.0, x_T=x_T)
    d2 = diffusion.sample(MIX.eps_fn(s), (50, 2), s, steps=10, eta=0.0, x_T=x_T)
    torch.testing.assert_close(d1, d2)


def test_ddim_eta_one_over_all_steps_equals_ddpm():
    s = diffusion.make_schedule("linear", 50)
    ddpm = diffusion.sample(MIX.eps_fn(s), (20, 2), s, generator=torch.Generator().manual_seed(2))
    ddim = diffusion.sample(MIX.eps_fn(s), (20, 2), s, steps=50, eta=1.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ddpm, ddim, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps"), (dict(steps=101), "steps"), (dict(eta=float("nan")), "eta"),
    (dict(eta=-0.5), "eta"), (dict(x_T=torch.zeros(3, 2)), "x_T"),
])
def test_sample_bad_arguments(kwargs, match):
    s = diffusion.make_schedule("linear", 100)
    with pytest.raises(ValueError, match=match):
        diffusion.sample(MIX.eps_fn(s), (4, 2), s, **kwargs)


def test_sample_rejects_bad_shape_and_bad_eps():
    s = diffusion.make_schedule("linear", 100)
    with pytest.raises(ValueError, match="shape"):
        diffusion.sample(MIX.eps_fn(s), (0, 2), s)
    with pytest.raises(ValueError, match="eps_fn must return"):
        diffusion.sample(lambda x, t: x[:, :1], (4, 2), s, steps=5)
    with pytest.raises(ValueError, match="T=50"):
        diffusion.sample(MIX.eps_fn(diffusion.make_schedule("linear", 50)), (4, 2), s, steps=5)
