"""Schedules, the forward process and the samplers, checked against exact answers."""

import math

import pytest
import torch

from course_lib import diffusion, toy
from course_lib.sample_metrics import sliced_wasserstein


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


def test_linear_schedule_values_pinned_to_ho_et_al():
    """Ho et al. 2020, sec. 4: betas linear from 1e-4 to 0.02 over T = 1000 steps; at another T both
    ends scale by 1000 / T (Nichol & Dhariwal 2021, sec. 3.2 do the same), capped at 0.999."""
    s = diffusion.make_schedule("linear", 1000)
    for i in [1, 250, 500, 998]:
        assert float(s.betas[i]) == pytest.approx(1e-4 + (0.02 - 1e-4) * i / 999, rel=1e-12)
    s = diffusion.make_schedule("linear", 100)
    assert float(s.betas[0]) == pytest.approx(1e-3) and float(s.betas[-1]) == pytest.approx(0.2)
    assert float(s.betas[50]) == pytest.approx(1e-3 + (0.2 - 1e-3) * 50 / 99, rel=1e-12)
    assert float(diffusion.make_schedule("linear", 10).betas[-1]) == pytest.approx(0.999)


@pytest.mark.parametrize("T", [50, 1000])
def test_cosine_schedule_pinned_to_nichol_dhariwal_eq_17(T):
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) * pi / 2),
    s = 0.008, t = 1..T; our index i is their step t = i + 1. Eq. 18 caps each beta at 0.999, which
    only touches the last steps. Computed here with math.cos, one value at a time."""
    def f(t):
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    s = diffusion.make_schedule("cosine", T)
    for i in [0, 1, T // 10, T // 4, T // 2, 3 * T // 4, 9 * T // 10]:
        assert float(s.alpha_bars[i]) == pytest.approx(f(i + 1) / f(0), rel=1e-9, abs=1e-12)
        assert float(s.betas[i]) == pytest.approx(min(1 - f(i + 1) / f(i), 0.999), rel=1e-9)
    assert float(s.betas[-1]) == pytest.approx(0.999)  # f(T) = 0: the cap of eq. 18


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


def exact_moments(mix: toy.GaussianMixture2D) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a mixture from its parameters: m = sum pi_k mu_k,
    C = sum pi_k (S_k + mu_k mu_k^T) - m m^T (the law of total variance)."""
    w, mu, cov = mix.weights, mix.means, mix.covs
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None]


LAW_TOL = 0.04  # exact sets of 10,000 points: at most 0.02 (five seeds); 5% wider or narrower: at least 0.086


def law_error(x: torch.Tensor, mix: toy.GaussianMixture2D) -> float:
    """How far the sample set ``x [n, 2]`` is from the mixture's exact law: the larger of the mean's
    error over the root of the total variance and the covariance's relative (Frobenius) error."""
    mean, cov = exact_moments(mix)
    x = x.double()
    mean_error = (x.mean(0) - mean).norm() / cov.trace().sqrt()
    cov_error = (torch.cov(x.T) - cov).norm() / cov.norm()
    return float(max(mean_error, cov_error))


def widened(x: torch.Tensor, factor: float = 1.05) -> torch.Tensor:
    """The sample set spread ``factor`` times as wide about its own mean."""
    centre = x.mean(0)
    return centre + factor * (x - centre)


N_LAW = 10_000


@pytest.mark.parametrize("seed", [0, 1])
def test_law_check_fails_a_set_5_percent_too_wide(seed):
    """The tolerance the samplers must meet tells a 5% error in spread or position from sampling noise."""
    x, _ = MIX.sample(N_LAW, generator=torch.Generator().manual_seed(seed))
    assert law_error(x, MIX) < LAW_TOL
    assert law_error(widened(x, 1.05), MIX) > LAW_TOL
    assert law_error(widened(x, 0.95), MIX) > LAW_TOL
    assert law_error(x + 0.05 * exact_moments(MIX)[1].trace().sqrt() * torch.tensor([0.6, 0.8]), MIX) > LAW_TOL


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_sampling_over_all_steps_with_exact_eps_gives_the_mixture(eta):
    """steps=None runs all T steps: ancestral DDPM at eta = 1, DDIM over every step otherwise.
    With the exact denoiser each gives the data law within LAW_TOL (measured: 0.017, 0.018, 0.024)."""
    s = diffusion.make_schedule("cosine", 200)
    out = diffusion.sample(MIX.eps_fn(s), (N_LAW, 2), s, eta=eta, generator=torch.Generator().manual_seed(0))
    assert law_error(out, MIX) < LAW_TOL
    assert law_error(widened(out), MIX) > LAW_TOL


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_eta_below_one_over_all_steps_is_ddim_over_all_steps(eta):
    """The documented branch steps=None, eta != 1: the same draws as DDIM with steps=T, not DDPM's."""
    s, eps_fn = diffusion.make_schedule("linear", 100), MIX.eps_fn(diffusion.make_schedule("linear", 100))
    out = diffusion.sample(eps_fn, (64, 2), s, eta=eta, generator=torch.Generator().manual_seed(4))
    ddim = diffusion.sample(eps_fn, (64, 2), s, steps=100, eta=eta, generator=torch.Generator().manual_seed(4))
    ddpm = diffusion.sample(eps_fn, (64, 2), s, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(out, ddim)
    assert (out - ddpm).abs().max() > 0.05
    if eta == 0.0:  # deterministic: the generator only draws x_T
        x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
        a = diffusion.sample(eps_fn, (64, 2), s, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(6))
        b = diffusion.sample(eps_fn, (64, 2), s, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(a, b)


def test_ddim_step_noise_is_eta_times_the_ddpm_posterior_std():
    """Song et al. 2021, eq. 16 between consecutive steps equals eta^2 times DDPM's posterior variance
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t (Ho et al. 2020, eq. 7)."""
    s = diffusion.make_schedule("linear", 100)
    z = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in [1, 40, 99]:
        ab, ab_prev, beta = float(s.alpha_bars[t]), float(s.alpha_bars[t - 1]), float(s.betas[t])
        beta_tilde = (1 - ab_prev) / (1 - ab) * beta
        for eta in [0.0, 0.5, 1.0]:
            x = torch.zeros(20_000, 2, dtype=torch.float64)
            out = diffusion.ddim_step(x, z, t, t - 1, s, eta, torch.Generator().manual_seed(1))
            noise = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            sigma = eta * math.sqrt(beta_tilde)
            # x0_hat = -sqrt(1 - ab) z / sqrt(ab), direction sqrt(1 - ab_prev - sigma^2) z, noise sigma
            expected = (-math.sqrt(ab_prev * (1 - ab) / ab) + math.sqrt(1 - ab_prev - sigma**2)) * z + sigma * noise
            torch.testing.assert_close(out, expected)


def test_ddpm_step_is_the_posterior_mean_of_eq_7_plus_its_noise():
    """Algorithm 2's mean (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) is eq. 7's
    posterior mean sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t
    with x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t); the noise has variance beta_tilde_t; no noise at t = 0."""
    s = diffusion.make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    for t in [0, 1, 50, 99]:
        ab, beta, alpha = float(s.alpha_bars[t]), float(s.betas[t]), 1 - float(s.betas[t])
        ab_prev = float(s.alpha_bars[t - 1]) if t > 0 else 1.0
        x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        mean = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(alpha) * (1 - ab_prev) / (1 - ab) * x
        noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        expected = mean + (math.sqrt((1 - ab_prev) / (1 - ab) * beta) * noise if t > 0 else 0)
        torch.testing.assert_close(diffusion.ddpm_step(x, eps, t, s, torch.Generator().manual_seed(1)), expected)


@pytest.mark.parametrize("steps, eta", [(50, 0.0), (50, 1.0), (20, 0.0)])
def test_few_step_ddim_with_exact_eps_is_close_to_the_mixture(steps, eta):
    """DDIM over few steps is biased (its discretisation error: the covariance is off by about 5% at
    50 steps and 12% at 20 on this mixture), so here the looser sliced-Wasserstein check: within the
    distance between two independent exact sample sets (the sampling-noise floor)."""
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
    (dict(eta=True), "^eta must be a finite number >= 0, got True"),
    (dict(progress="yes"), "^progress must be True or False"),
    (dict(return_trajectory=1), "^return_trajectory must be True or False"),
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


def test_score_and_eps_conversions_need_one_t_per_sample():
    s = diffusion.make_schedule("linear", 50)
    for convert in (diffusion.score_from_eps, diffusion.eps_from_score):
        with pytest.raises(ValueError, match="one entry per sample"):
            convert(torch.randn(3, 2), torch.tensor([1, 2]), s)


@pytest.mark.parametrize("betas", [torch.tensor([]), torch.full((2, 2), 0.1), [0.1, 0.2], torch.tensor([0.1, 0.0]),
                                   torch.tensor([0.1, 1.0]), torch.tensor([0.1, float("nan")])])
def test_schedule_rejects_each_kind_of_bad_betas(betas):
    with pytest.raises(ValueError, match="^betas must"):
        diffusion.Schedule(betas)


def test_schedule_holds_float64_betas_and_its_defaults():
    s = diffusion.Schedule(torch.tensor([0.1, 0.2], dtype=torch.float32))
    assert s.betas.dtype == torch.float64 and s.T == 2
    assert float(s.betas[0]) == pytest.approx(0.1, rel=1e-6)
    assert diffusion.make_schedule("linear", 2).T == 2
    torch.testing.assert_close(diffusion.make_schedule().betas, diffusion.make_schedule("linear", 1000).betas)


@pytest.mark.parametrize("t", [torch.tensor([1.0, 2.0]), torch.tensor([[1, 2]]), [1, 2], torch.tensor([1, 2], dtype=torch.int32)])
def test_check_t_wants_a_1d_long_tensor(t):
    with pytest.raises(ValueError, match="^t must be a 1-D long tensor"):
        diffusion.make_schedule("linear", 10).check_t(t)


def test_ddim_timesteps_edges():
    assert diffusion.ddim_timesteps(1, 10) == [0]
    assert diffusion.ddim_timesteps(7, 1000) == [round(i * 999 / 6) for i in range(6, -1, -1)]
    for steps in (0, 1.5, True):
        with pytest.raises(ValueError, match="^steps must be an integer"):
            diffusion.ddim_timesteps(steps, 10)


def test_sampler_casts_eps_to_the_dtype_of_x():
    s = diffusion.make_schedule("linear", 10)
    out = diffusion.sample(lambda x, t: torch.zeros(x.shape, dtype=torch.float64), (3, 2), s, steps=2, eta=0.0)
    assert out.dtype == torch.float32


def test_the_sampler_loop_runs_its_hook_before_each_predictor_step():
    """sample and langevin.sample_pc share one loop; its hook sees each level's x before the step."""
    s, levels = diffusion.make_schedule("linear", 100), []
    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))

    def hook(x, t):
        levels.append(t)
        return x

    hooked = diffusion._sample_loop(MIX.eps_fn(s), (6, 2), s, steps=4, eta=0.0, generator=None,
                                    return_trajectory=True, x_T=x_T, dtype=torch.float32, device=None,
                                    progress=False, before_step=hook)
    plain = diffusion.sample(MIX.eps_fn(s), (6, 2), s, steps=4, eta=0.0, x_T=x_T, return_trajectory=True)
    assert levels == diffusion.ddim_timesteps(4, 100)
    assert torch.equal(hooked[0], plain[0]) and torch.equal(hooked[1], plain[1])


def test_a_one_step_schedule_is_valid():
    """betas must be non-empty: one beta is a schedule with T = 1 (alpha_bar_0 = 1 - beta_0)."""
    s = diffusion.Schedule(torch.tensor([0.5]))
    assert s.T == 1 and s.alpha_bars.tolist() == [0.5]


def test_ddim_timesteps_are_exact_beyond_float32_integers():
    """The grid is computed in float64: T - 1 = 2**24 + 1 has no float32 (it would round to 2**24)."""
    assert diffusion.ddim_timesteps(2, 2**24 + 2) == [2**24 + 1, 0]


def test_ddim_timesteps_message_names_the_schedules_T():
    with pytest.raises(ValueError, match=r"^steps must be an integer in 1\.\.10 \(the schedule's T\), got 11$"):
        diffusion.ddim_timesteps(11, 10)


def test_sample_accepts_a_batch_of_one_and_unit_dimensions():
    s = diffusion.make_schedule("linear", 10)
    out = diffusion.sample(lambda x, t: torch.zeros_like(x), (1, 1), s, steps=2, eta=0.0, x_T=torch.ones(1, 1))
    assert out.shape == (1, 1)


def test_all_steps_at_eta_one_is_exactly_the_ddpm_step_loop_and_other_eta_the_ddim_step_loop():
    """steps=None: eta = 1 runs ddpm_step at every t (DDPM Algorithm 2), any other eta ddim_step
    (the two agree at eta = 1 only up to rounding, so torch.equal tells them apart)."""
    s = diffusion.make_schedule("linear", 20)
    eps_fn = MIX.eps_fn(s)
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for eta in (1.0, 2.0):
        out = diffusion.sample(eps_fn, (8, 2), s, eta=eta, x_T=x_T, generator=torch.Generator().manual_seed(1))
        g, x = torch.Generator().manual_seed(1), x_T.clone()
        for t in range(19, -1, -1):
            eps = eps_fn(x, torch.full((8,), t, dtype=torch.long))
            x = (diffusion.ddpm_step(x, eps, t, s, g) if eta == 1.0
                 else diffusion.ddim_step(x, eps, t, t - 1, s, eta, g))
        assert torch.equal(out, x), eta


def test_progress_bar_is_labelled_sampling_cleared_at_the_end_and_off_by_default(capsys):
    s = diffusion.make_schedule("linear", 3)
    diffusion.sample(lambda x, t: torch.zeros_like(x), (2, 2), s)
    diffusion.sample(lambda x, t: torch.zeros_like(x), (2, 2), s, progress=False)
    assert capsys.readouterr().err == ""
    diffusion.sample(lambda x, t: torch.zeros_like(x), (2, 2), s, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rsampling: ")
    *_, last_bar, end = err.split("\r")  # leave=False: the bar is overwritten with blanks, no newline
    assert last_bar.strip() == "" and end == "" and "\n" not in err
