"""GaussianMixture2D against Monte Carlo, finite differences and closed forms."""

import math

import pytest
import torch

from course_lib import diffusion, toy
from course_lib.metrics import sliced_wasserstein


def overlapping() -> toy.GaussianMixture2D:
    """A mixture none of the presets is: unequal weights, anisotropic, overlapping."""
    covs = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 1.5]], [[0.5, 0.0], [0.0, 0.2]]])
    return toy.GaussianMixture2D([[0.0, 0.0], [0.8, -0.5], [-1.0, 1.2]], covs, [0.5, 0.2, 0.3])


MIXTURES = [overlapping(), *[toy.make_mixture(n) for n in toy.PRESETS]]


def gaussian_log_pdf(x, mean, cov):
    return torch.distributions.MultivariateNormal(mean, cov).log_prob(x)


@pytest.mark.parametrize("mix", MIXTURES, ids=["overlapping", *toy.PRESETS])
def test_log_prob_matches_torch_distributions(mix):
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    per_class = torch.stack([gaussian_log_pdf(x, mix.means[k], mix.covs[k]) for k in range(mix.num_classes)], 1)
    marginal = torch.logsumexp(per_class + mix.weights.log(), 1)
    torch.testing.assert_close(mix.log_prob(x), marginal)
    for k in range(mix.num_classes):
        torch.testing.assert_close(mix.log_prob(x, y=k), per_class[:, k])
    torch.testing.assert_close(mix.posterior(x), torch.softmax(per_class + mix.weights.log(), 1))


@pytest.mark.parametrize("mix", MIXTURES, ids=["overlapping", *toy.PRESETS])
def test_score_matches_finite_differences(mix):
    x = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    h = 1e-5
    for y in [None, 0, mix.num_classes - 1]:
        fd = torch.stack([(mix.log_prob(x + h * e, y) - mix.log_prob(x - h * e, y)) / (2 * h)
                          for e in torch.eye(2, dtype=torch.float64)], 1)
        torch.testing.assert_close(mix.score(x, y), fd, atol=1e-6, rtol=1e-6)


def test_posterior_sums_to_one_and_is_bayes():
    mix = overlapping()
    x = torch.randn(100, 2, dtype=torch.float64) * 3
    post = mix.posterior(x)
    torch.testing.assert_close(post.sum(1), torch.ones(100, dtype=torch.float64))
    bayes = (mix.log_prob(x, 1) + mix.weights[1].log() - mix.log_prob(x)).exp()
    torch.testing.assert_close(post[:, 1], bayes)


def test_log_prob_integrates_to_one():
    mix = overlapping()
    g = torch.linspace(-8, 8, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    cell = float(g[1] - g[0]) ** 2
    assert math.isclose(float(mix.log_prob(pts).exp().sum()) * cell, 1.0, abs_tol=1e-4)
    assert math.isclose(float(mix.log_prob(pts, 2).exp().sum()) * cell, 1.0, abs_tol=1e-4)


def test_sample_matches_moments_and_weights():
    mix = overlapping()
    x, y = mix.sample(200_000, generator=torch.Generator().manual_seed(3))
    freq = torch.bincount(y, minlength=3).double() / len(y)
    torch.testing.assert_close(freq, mix.weights, atol=5e-3, rtol=0)
    for k in range(3):
        xk = x[y == k].double()
        torch.testing.assert_close(xk.mean(0), mix.means[k], atol=0.02, rtol=0)
        torch.testing.assert_close(torch.cov(xk.T), mix.covs[k], atol=0.03, rtol=0)
    _, y_fixed = mix.sample(10, y=2)
    assert (y_fixed == 2).all()


def test_q_sample_law_matches_noised():
    mix, schedule = overlapping(), diffusion.make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(4)
    x0, _ = mix.sample(20_000, generator=g)
    for t, t_wrong in [(50, 400), (300, 700), (800, 100)]:
        tt = torch.full((len(x0),), t, dtype=torch.long)
        xt = diffusion.q_sample(x0, tt, torch.randn(x0.shape, generator=g), schedule)
        exact, _ = mix.noised(float(schedule.alpha_bars[t])).sample(20_000, generator=g)
        ref, _ = mix.noised(float(schedule.alpha_bars[t])).sample(20_000, generator=g)
        floor = sliced_wasserstein(exact, ref)
        assert sliced_wasserstein(xt, exact) < 3 * floor + 0.01
        # and it is far from the law at a quite different time
        wrong, _ = mix.noised(float(schedule.alpha_bars[t_wrong])).sample(20_000, generator=g)
        assert sliced_wasserstein(xt, wrong) > 3 * floor + 0.01


def test_eps_fn_is_minus_sigma_times_noised_score():
    mix, schedule = overlapping(), diffusion.make_schedule("cosine", 200)
    x = torch.randn(30, 2, dtype=torch.float64)
    t = torch.randint(200, (30,))
    a = schedule.alpha_bars[t]
    expected = torch.stack([-(1 - a[i]).sqrt() * mix.noised(float(a[i])).score(x[i:i + 1])[0] for i in range(30)])
    torch.testing.assert_close(mix.eps_fn(schedule)(x, t), expected)
    expected_y = torch.stack([-(1 - a[i]).sqrt() * mix.noised(float(a[i])).score(x[i:i + 1], 1)[0]
                              for i in range(30)])
    torch.testing.assert_close(mix.eps_fn(schedule, y=1)(x, t), expected_y)


def test_log_posterior_fn_matches_noised_posterior():
    mix, schedule = overlapping(), diffusion.make_schedule("linear", 1000)
    x = torch.randn(10, 2, dtype=torch.float64)
    t = torch.full((10,), 400, dtype=torch.long)
    post = mix.noised(float(schedule.alpha_bars[400])).posterior(x)
    torch.testing.assert_close(mix.log_posterior_fn(schedule)(x, t).exp(), post)


def test_noised_at_alpha_bar_one_is_identity():
    mix = overlapping()
    same = mix.noised(1.0)
    torch.testing.assert_close(same.means, mix.means)
    torch.testing.assert_close(same.covs, mix.covs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(means=[[0.0, 0.0, 0.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]], weights=[1.0]), "means"),
    (dict(means=[[0.0, 0.0]], covs=[[[1.0, 0.0], [0.0, -1.0]]], weights=[1.0]), "positive definite"),
    (dict(means=[[0.0, 0.0]], covs=[[[1.0, 0.5], [0.0, 1.0]]], weights=[1.0]), "symmetric"),
    (dict(means=[[0.0, 0.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]], weights=[-1.0]), "weights"),
    (dict(means=[[float("nan"), 0.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]], weights=[1.0]), "means"),
    (dict(means=[[0.0, 0.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]], weights=[1.0, 2.0]), "weights"),
])
def test_bad_mixture_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy.GaussianMixture2D(**kwargs)


def test_bad_inputs_raise():
    mix = overlapping()
    with pytest.raises(ValueError, match="x must"):
        mix.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="y must lie in 0..2"):
        mix.score(torch.zeros(4, 2), y=3)
    with pytest.raises(ValueError, match="y must lie"):
        mix.log_prob(torch.zeros(4, 2), y=-1)
    with pytest.raises(ValueError, match="alpha_bar"):
        mix.noised(0.0)
    with pytest.raises(ValueError, match="alpha_bar"):
        mix.noised(float("nan"))
    with pytest.raises(ValueError, match="name must be one of"):
        toy.make_mixture("spiral")
    with pytest.raises(ValueError, match="t must lie"):
        mix.eps_fn(diffusion.make_schedule("linear", 100))(torch.zeros(2, 2), torch.tensor([5, 100]))


def test_sklearn_shapes_are_labelled():
    for name in ["moons", "circles"]:
        x, y = toy.sklearn_shape(name, 300, seed=1)
        assert x.shape == (300, 2) and x.dtype == torch.float32
        assert set(y.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="moons"):
        toy.sklearn_shape("swiss", 10)
