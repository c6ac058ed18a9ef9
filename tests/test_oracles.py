"""The exact denoiser and noise-aware classifier of a mixture against closed forms written out here."""

import pytest
import torch

from course_lib import diffusion, oracles, toy


def overlapping() -> toy.GaussianMixture2D:
    covs = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 1.5]], [[0.5, 0.0], [0.0, 0.2]]])
    return toy.GaussianMixture2D([[0.0, 0.0], [0.8, -0.5], [-1.0, 1.2]], covs, [0.5, 0.2, 0.3])


def _noised_log_pdfs(mix, x, a):
    """``log pi_k + log N(x_i; sqrt(a_i) mu_k, a_i S_k + (1 - a_i) I)`` ``[n, K]`` (Ho et al. 2020, eq. 4), by torch."""
    eye = torch.eye(2, dtype=torch.float64)
    law = torch.distributions.MultivariateNormal(a.sqrt()[:, None, None] * mix.means,
                                                 a[:, None, None, None] * mix.covs + (1 - a)[:, None, None, None] * eye)
    return law.log_prob(x[:, None]) + mix.weights.log()


def test_eps_fn_is_minus_sigma_times_the_noised_score():
    """eps = -sigma_t grad log p_t, the gradient taken by autograd of the noised law, one t per sample."""
    mix, schedule = overlapping(), diffusion.make_schedule("cosine", 200)
    x = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    t = torch.randint(200, (30,), generator=torch.Generator().manual_seed(1))
    log_pdfs = _noised_log_pdfs(mix, x, schedule.alpha_bars[t])
    score, = torch.autograd.grad(torch.logsumexp(log_pdfs, 1).sum(), x, retain_graph=True)
    score_y, = torch.autograd.grad(log_pdfs[:, 1].sum(), x)
    sigma = schedule.sigmas[t][:, None]
    x = x.detach()
    torch.testing.assert_close(oracles.eps_fn(mix, schedule)(x, t), -sigma * score)
    torch.testing.assert_close(oracles.eps_fn(mix, schedule, 1)(x, t), -sigma * score_y)


def test_eps_fn_of_a_standard_normal_shrinks_by_the_noised_variance():
    """Data N(0, v I) gives x_t ~ N(0, (a v + 1 - a) I), so eps = sigma_t x / (a v + 1 - a)."""
    v, schedule = 0.25, diffusion.make_schedule("linear", 100)
    mix = toy.GaussianMixture2D([[0.0, 0.0]], [[[v, 0.0], [0.0, v]]], [1.0])
    x, t = torch.randn(8, 2, dtype=torch.float64), torch.arange(0, 100, 13)[:8]
    a = schedule.alpha_bars[t][:, None]
    torch.testing.assert_close(oracles.eps_fn(mix, schedule)(x, t), schedule.sigmas[t][:, None] * x / (a * v + 1 - a))


def test_log_posterior_fn_is_bayes_rule_on_the_noised_law():
    mix, schedule = overlapping(), diffusion.make_schedule("linear", 1000)
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t in (torch.full((10,), 400), torch.arange(0, 1000, 100)):
        expected = torch.log_softmax(_noised_log_pdfs(mix, x, schedule.alpha_bars[t]), 1)
        torch.testing.assert_close(oracles.log_posterior_fn(mix, schedule)(x, t), expected)
        torch.testing.assert_close(oracles.OracleClassifier(mix, schedule)(x, t), expected)


def test_the_mixtures_methods_delegate_to_the_oracles():
    mix, s = overlapping(), diffusion.make_schedule("linear", 100)
    x, t = torch.randn(6, 2), torch.tensor([0, 5, 5, 50, 99, 3])
    assert torch.equal(mix.eps_fn(s, 2)(x, t), oracles.eps_fn(mix, s, 2)(x, t))
    assert torch.equal(mix.log_posterior_fn(s)(x, t), oracles.log_posterior_fn(mix, s)(x, t))
    assert toy.OracleDenoiser is oracles.OracleDenoiser and toy.OracleClassifier is oracles.OracleClassifier


def test_oracles_return_the_dtype_of_x_and_take_a_batch_of_one():
    mix, s = overlapping(), diffusion.make_schedule("linear", 100)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([3, 50, 50, 99, 0])
    for fn in (oracles.eps_fn(mix, s), oracles.eps_fn(mix, s, y=1), oracles.log_posterior_fn(mix, s)):
        out32, out64 = fn(x, t), fn(x.double(), t)
        assert out32.dtype == torch.float32 and out64.dtype == torch.float64
        torch.testing.assert_close(out32, out64.float())
        torch.testing.assert_close(fn(x[:1].double(), t[:1]), out64[:1])


def test_oracle_denoiser_for_every_label_and_the_null_one():
    mix, s = overlapping(), diffusion.make_schedule("linear", 100)
    oracle, x, t = oracles.OracleDenoiser(mix, s), torch.randn(4, 2, dtype=torch.float64), torch.full((4,), 30)
    assert oracle.num_classes == 3 and oracle.T == 100
    for y in range(3):
        torch.testing.assert_close(oracle(x, t, torch.full((4,), y)), oracles.eps_fn(mix, s, y)(x, t))
    torch.testing.assert_close(oracle(x, t, torch.full((4,), 3)), oracles.eps_fn(mix, s)(x, t))
    mixed = oracle(x, t, torch.tensor([0, 3, 2, 3]))
    torch.testing.assert_close(mixed[1::2], oracles.eps_fn(mix, s)(x, t)[1::2])
    with pytest.raises(ValueError, match="y must lie in 0..3"):
        oracle(x, t, torch.full((4,), 4))


@pytest.mark.parametrize("t, match", [(torch.tensor([5, 100]), "t must lie in 0..99"),
                                      (torch.tensor([1, 2, 3]), "one entry per sample"),
                                      (torch.tensor([1.0, 2.0]), "t must be a 1-D long tensor")])
def test_bad_steps_raise(t, match):
    s = diffusion.make_schedule("linear", 100)
    for fn in (oracles.eps_fn(overlapping(), s), oracles.log_posterior_fn(overlapping(), s)):
        with pytest.raises(ValueError, match=match):
            fn(torch.zeros(2, 2), t)


def test_oracles_want_one_time_step_per_sample():
    """t [1] against x [3, 2] is refused, not broadcast over the batch."""
    mix, schedule = overlapping(), diffusion.make_schedule("linear", 100)
    x, t = torch.randn(3, 2, dtype=torch.float64), torch.tensor([10])
    for fn in (oracles.eps_fn(mix, schedule), oracles.log_posterior_fn(mix, schedule)):
        with pytest.raises(ValueError, match=r"^t must have one entry per sample \(3\), got 1$"):
            fn(x, t)
