"""GaussianMixture2D against Monte Carlo, finite differences and closed forms."""

import math

import pytest
import torch

from course_lib import diffusion, toy
from course_lib.sample_metrics import sliced_wasserstein


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


def test_noised_at_alpha_bar_one_is_identity():
    mix = overlapping()
    same = mix.noised(1.0)
    torch.testing.assert_close(same.means, mix.means)
    torch.testing.assert_close(same.covs, mix.covs)


def test_noised_gaussians_is_the_law_of_c_x0_plus_s_eps():
    """N(c mu, c^2 S + s^2 I), written out by hand: DDPM's x_t (c^2 = a, s^2 = 1 - a) and the flow's x_tau."""
    mix, eye = overlapping(), torch.eye(2, dtype=torch.float64)
    means, covs = toy.noised_gaussians(mix.means, mix.covs, 0.3, 0.7)
    torch.testing.assert_close(means, math.sqrt(0.3) * mix.means)
    torch.testing.assert_close(covs, 0.3 * mix.covs + 0.7 * eye)
    noised = mix.noised(0.3)
    torch.testing.assert_close(noised.means, math.sqrt(0.3) * mix.means)
    torch.testing.assert_close(noised.covs, 0.3 * mix.covs + 0.7 * eye)
    tau = torch.tensor([0.2, 1.0], dtype=torch.float64)                    # one law per entry
    means, covs = toy.noised_gaussians(mix.means, mix.covs, (1 - tau) ** 2, tau**2)
    assert means.shape == (2, 3, 2) and covs.shape == (2, 3, 2, 2)
    torch.testing.assert_close(means[0], 0.8 * mix.means)
    torch.testing.assert_close(covs[0], 0.64 * mix.covs + 0.04 * eye)
    torch.testing.assert_close(covs[1], eye.expand(3, 2, 2))


def test_noised_answers_per_sample_are_those_of_the_noised_mixture():
    """noised_score, noised_log_posterior and denoised with one (c^2, s^2) per sample equal the answers
    of a mixture built by hand at each sample's level; denoised is Tweedie's E[x0 | x] = (x + s^2 score) / c."""
    mix = overlapping()
    x = torch.randn(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2
    c2 = torch.rand(12, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 0.9 + 0.05
    s2 = torch.rand(12, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) + 0.01
    score, score_y = mix.noised_score(x, c2, s2), mix.noised_score(x, c2, s2, 1)
    log_post, x0_hat = mix.noised_log_posterior(x, c2, s2), mix.denoised(x, c2, s2)
    eye = torch.eye(2, dtype=torch.float64)
    for i in range(12):
        law = toy.GaussianMixture2D(c2[i].sqrt() * mix.means, c2[i] * mix.covs + s2[i] * eye, mix.weights)
        torch.testing.assert_close(score[i], law.score(x[i:i + 1])[0])
        torch.testing.assert_close(score_y[i], law.score(x[i:i + 1], 1)[0])
        torch.testing.assert_close(log_post[i].exp(), law.posterior(x[i:i + 1])[0])
    torch.testing.assert_close(x0_hat, (x + s2[:, None] * score) / c2[:, None].sqrt())
    # no signal left: the posterior mean is the prior mean, of the class when given
    torch.testing.assert_close(mix.denoised(x, 0.0, 1.0), (mix.weights[:, None] * mix.means).sum(0).expand(12, 2))
    torch.testing.assert_close(mix.denoised(x, 0.0, 1.0, 2), mix.means[2].expand(12, 2))


@pytest.mark.parametrize("signal_var, noise_var, match", [
    (-0.1, 1.0, "finite, >= 0"), (0.0, 0.0, "not both 0"), (float("nan"), 1.0, "finite"),
    (torch.full((3,), 0.5), torch.full((3,), 0.5), "one entry per sample"),
    (torch.full((4,), 0.5), 0.5, "one entry per sample"),
])
def test_noised_answers_reject_bad_levels(signal_var, noise_var, match):
    with pytest.raises(ValueError, match=match):
        overlapping().noised_score(torch.zeros(4, 2), signal_var, noise_var)


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


def test_sklearn_shapes_are_labelled():
    for name in ["moons", "circles"]:
        x, y = toy.sklearn_shape(name, 300, seed=1)
        assert x.shape == (300, 2) and x.dtype == torch.float32
        assert set(y.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="moons"):
        toy.sklearn_shape("swiss", 10)


# --- the presets are the mixtures their docstrings describe ----------------------------------------


def _eye(scale: float, k: int) -> torch.Tensor:
    return scale * torch.eye(2, dtype=torch.float64).expand(k, 2, 2)


@pytest.mark.parametrize("k, radius, std", [(8, 3.0, 0.4), (5, 2.0, 0.25)])
def test_ring_is_k_equal_round_components_evenly_on_a_circle(k, radius, std):
    m = toy.ring() if (k, radius, std) == (8, 3.0, 0.4) else toy.ring(k, radius, std)
    angles = [2 * math.pi * i / k for i in range(k)]
    expected = torch.tensor([[radius * math.cos(a), radius * math.sin(a)] for a in angles], dtype=torch.float64)
    torch.testing.assert_close(m.means, expected)
    torch.testing.assert_close(m.covs, _eye(std**2, k), rtol=1e-12, atol=0)   # float64 all the way
    torch.testing.assert_close(m.weights, torch.full((k,), 1 / k, dtype=torch.float64))


@pytest.mark.parametrize("side, spacing, std", [(3, 2.5, 0.4), (2, 0.3, 0.3)])
def test_grid_is_side_by_side_equal_components_centred_at_the_origin(side, spacing, std):
    m = toy.grid() if (side, spacing, std) == (3, 2.5, 0.4) else toy.grid(side, spacing, std)
    coords = [(i - (side - 1) / 2) * spacing for i in range(side)]
    expected = sorted((x, y) for x in coords for y in coords)
    assert sorted(map(tuple, m.means.tolist())) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert m.means[0].tolist() == pytest.approx([coords[0], coords[0]])
    assert m.means[1].tolist() == pytest.approx([coords[1], coords[0]])  # x runs fastest
    torch.testing.assert_close(m.covs, _eye(std**2, side * side), rtol=1e-12, atol=0)
    torch.testing.assert_close(m.weights, torch.full((side * side,), 1 / side**2, dtype=torch.float64))


def test_unequal_weights_preset():
    m = toy.unequal_weights()
    torch.testing.assert_close(m.weights, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64))
    torch.testing.assert_close(m.means, torch.tensor([[-1.5, -0.8], [1.5, -0.8], [0.0, 1.6]], dtype=torch.float64))
    torch.testing.assert_close(m.covs, _eye(0.64, 3), rtol=1e-12, atol=0)


def test_anisotropic_preset_is_the_mixture_the_shipped_toy_models_learned():
    """The lessons' default; the shipped toy_cfg checkpoint stores the mixture it was trained on."""
    from course_lib import pretrained

    m, shipped = toy.anisotropic(), pretrained.load("toy_cfg").meta["mixture"]
    for a, b in [(m.means, shipped.means), (m.covs, shipped.covs), (m.weights, shipped.weights)]:
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(m.weights, torch.tensor([0.4, 0.35, 0.25], dtype=torch.float64))
    # elongated: standard deviations (1.0, 0.35), (1.0, 0.35), (1.2, 0.4), the first two turned by +-45 degrees
    vals, vecs = torch.linalg.eigh(m.covs)
    torch.testing.assert_close(vals.sqrt(), torch.tensor([[0.35, 1.0], [0.35, 1.0], [0.4, 1.2]], dtype=torch.float64))
    major = vecs[..., 1] * vecs[..., 1, :1].sign()
    r = 1 / math.sqrt(2)
    torch.testing.assert_close(major, torch.tensor([[r, r], [-r, r], [1.0, 0.0]], dtype=torch.float64).abs()
                               * torch.tensor([[1, 1], [1, -1], [1, 1]], dtype=torch.float64))


def test_branches_structure():
    """Two classes; each a binary tree of depth levels, per_branch thin Gaussians per branch; a branch's
    mass length * 0.5^level; the first branch of class 0 leaves the origin at 45 degrees."""
    depth, length, per_branch, thickness = 3, 2.0, 2, 0.1
    m = toy.branches(depth=depth, length=length, per_branch=per_branch, thickness=thickness)
    per_class = per_branch * (2**depth - 1)
    assert m.num_components == 2 * per_class and m.num_classes == 2
    assert m.labels.tolist() == [0] * per_class + [1] * per_class
    r = 1 / math.sqrt(2)
    torch.testing.assert_close(m.means[0], torch.tensor([r, r], dtype=torch.float64) * length * 0.25 / per_branch * 2)
    torch.testing.assert_close(m.means[1], torch.tensor([r, r], dtype=torch.float64) * length * 0.75)
    torch.testing.assert_close(m.means[per_class], -m.means[0])                # class 1 grows the other way
    vals = torch.linalg.eigvalsh(m.covs[0]).sqrt()
    torch.testing.assert_close(vals, torch.tensor([thickness, 0.5 * length / per_branch], dtype=torch.float64))
    vals = torch.linalg.eigvalsh(m.covs[per_branch]).sqrt()                    # level 1: 0.7 as long and thin
    torch.testing.assert_close(vals, torch.tensor([0.7 * thickness, 0.5 * 0.7 * length / per_branch],
                                                  dtype=torch.float64))
    # masses: the trunk holds length, each level-1 branch 0.7 length * 0.5, each level-2 0.49 length * 0.25
    # (depth first: trunk, first child and its two children, second child and its two children)
    masses = torch.tensor([1, 0.35, 0.1225, 0.1225, 0.35, 0.1225, 0.1225], dtype=torch.float64) * length
    torch.testing.assert_close(m.weights[:per_class].reshape(-1, per_branch).sum(1) / m.weights[:per_class].sum(),
                               masses / masses.sum())
    # the first child turns by +0.6 rad from the trunk's 45 degrees and starts at the trunk's end
    child = m.means[per_branch] - length * torch.tensor([r, r], dtype=torch.float64)
    angle = math.atan2(float(child[1]), float(child[0]))
    assert angle == pytest.approx(math.pi / 4 + 0.6)
    assert float(child.norm()) == pytest.approx(0.7 * length * 0.5 / per_branch)

    def heading(first: int, second: int) -> float:
        step = m.means[second] - m.means[first]
        return math.atan2(float(step[1]), float(step[0]))

    # depth first: 0-1 trunk, 2-3 first child, 4-5 its first child, 6-7 its second, 8-9 the trunk's second child
    assert heading(2, 3) == pytest.approx(math.pi / 4 + 0.6, rel=1e-12)
    assert heading(4, 5) == pytest.approx(math.pi / 4 + 0.6 + 0.6 * 0.8, rel=1e-12)   # turns shrink by 0.8
    assert heading(6, 7) == pytest.approx(math.pi / 4 + 0.6 - 0.6 * 0.8, rel=1e-12)
    assert heading(8, 9) == pytest.approx(math.pi / 4 - 0.6, rel=1e-12)
    default = toy.branches()
    explicit = toy.branches(depth=4, length=1.5, per_branch=3, thickness=0.06)
    torch.testing.assert_close(default.means, explicit.means, rtol=0, atol=0)
    torch.testing.assert_close(default.covs, explicit.covs, rtol=0, atol=0)


def test_sklearn_shapes_are_scaled_copies_of_scikit_learns():
    from sklearn.datasets import make_circles, make_moons

    x, y = toy.sklearn_shape("moons", 400, noise=0.05, seed=3)
    ref_x, ref_y = make_moons(400, noise=0.05, random_state=3)
    assert x.dtype == torch.float32 and y.dtype == torch.long and torch.equal(y, torch.as_tensor(ref_y))
    torch.testing.assert_close(x.double(), (torch.as_tensor(ref_x) - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 2,
                               atol=1e-6, rtol=1e-6)
    x, y = toy.sklearn_shape("circles", 400, noise=0.05, seed=3)
    ref_x, ref_y = make_circles(400, noise=0.05, factor=0.5, random_state=3)
    assert torch.equal(y, torch.as_tensor(ref_y))
    torch.testing.assert_close(x.double(), torch.as_tensor(ref_x) * 3.0, atol=1e-6, rtol=1e-6)
    assert toy.make_mixture("ring").num_components == 8 and toy.make_mixture("grid").num_components == 9
    assert set(toy.PRESETS) == {"ring", "grid", "unequal_weights", "anisotropic"}


# --- dtypes, batches of one and the edges of the arguments -----------------------------------------


def test_labelled_sampling_is_reproducible_and_handles_one_component_classes():
    mix = toy.GaussianMixture2D([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [torch.eye(2).tolist()] * 3, [1, 1, 2],
                                labels=[0, 0, 1])
    a = mix.sample(200, y=torch.tensor([0, 1] * 100), generator=torch.Generator().manual_seed(1))[0]
    b = mix.sample(200, y=torch.tensor([0, 1] * 100), generator=torch.Generator().manual_seed(1))[0]
    torch.testing.assert_close(a, b)
    assert (a[1::2] - torch.tensor([0.0, 3.0])).norm(dim=1).mean() < 1.6   # class 1 is its one component


@pytest.mark.parametrize("call, match", [
    (lambda m: toy.GaussianMixture2D(torch.zeros(0, 2), torch.zeros(0, 2, 2), torch.zeros(0)), "means must"),
    (lambda m: m.score(torch.zeros(4, 2, 1)), r"x must be a tensor of shape \[n, 2\], got \(4, 2, 1\)"),
    (lambda m: m.score([[0.0, 0.0]]), r"x must be a tensor of shape \[n, 2\], got list"),
    (lambda m: m.noised(1.5), r"^alpha_bar must be a finite number > 0 and <= 1, got 1.5"),
    (lambda m: m.broadened(True), "^delta must be a finite number >= 0, got True"),
    (lambda m: m.broadened(-0.1), "^delta must be a finite number >= 0"),
    (lambda m: m.conditional(1.5), r"^y must be an integer in 0..2, got 1.5"),
    (lambda m: m.conditional(3), r"^y must be an integer in 0..2, got 3"),
    (lambda m: toy.branches(depth=0), "^depth must be an integer >= 1, got 0"),
    (lambda m: toy.branches(thickness=float("inf")), "^thickness must be a finite number > 0"),
])
def test_bad_arguments_one_clause_at_a_time(call, match):
    with pytest.raises(ValueError, match=match):
        call(overlapping())


def test_mixture_checks_one_clause_at_a_time():
    eye = torch.eye(2, dtype=torch.float64)
    good = dict(means=torch.zeros(2, 2), covs=torch.stack([eye, eye]), weights=torch.ones(2))
    for name in ("means", "covs", "weights"):
        bad = dict(good, **{name: good[name].clone()})
        bad[name].view(-1)[0] = float("nan")
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            toy.GaussianMixture2D(**bad)
    with pytest.raises(ValueError, match="^weights must all be positive"):
        toy.GaussianMixture2D(good["means"], good["covs"], torch.tensor([1.0, 0.0]))
    skew = good["covs"].clone()
    skew[0, 0, 1] = 1e-9                                                   # asymmetric by 1e-9
    with pytest.raises(ValueError, match="^covs must be symmetric"):
        toy.GaussianMixture2D(good["means"], skew, good["weights"])
    flat = good["covs"].clone()
    flat[0, 1, 1] = 0.0                                                    # an eigenvalue exactly 0
    with pytest.raises(ValueError, match="^covs must be positive definite"):
        toy.GaussianMixture2D(good["means"], flat, good["weights"])


def test_sample_sizes_and_seeds():
    mix = overlapping()
    x, y = mix.sample(0)
    assert x.shape == (0, 2) and y.shape == (0,) and y.dtype == torch.long
    with pytest.raises(ValueError, match="^n must be an integer >= 0, got -1"):
        mix.sample(-1)
    a = mix.sample(300, generator=torch.Generator().manual_seed(2))
    b = mix.sample(300, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])


def test_class_draws_are_the_mean_plus_the_cholesky_factor_times_the_generators_normals():
    """For one component per class, x = mu_y + L_y z (L_y L_y^T = S_y) with z the generator's normal draws,
    so draws given y can be reproduced from the seed alone."""
    mix = overlapping()
    y = torch.tensor([0, 1, 2, 2, 1])
    x, _ = mix.sample(5, y=y, generator=torch.Generator().manual_seed(4))
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    chol = torch.linalg.cholesky(mix.covs)
    torch.testing.assert_close(x, (mix.means[y] + (chol[y] @ z[:, :, None])[:, :, 0]).float())


def test_repr_says_components_and_classes():
    assert repr(overlapping()) == "GaussianMixture2D(K=3, weights=[0.5, 0.2, 0.3])"
    labelled = toy.GaussianMixture2D(torch.zeros(3, 2), torch.eye(2).expand(3, 2, 2), torch.ones(3), labels=[0, 0, 1])
    assert repr(labelled) == "GaussianMixture2D(K=3 components, 2 classes)"


# --- float64 to the last digits, exact edges, defaults (mutation survivors of course_lib.toy) -------


def _exact_noised(mix, x, c2, s2, y=None):
    """The law of c x0 + s eps for one-component-per-class ``mix``, written out with
    torch.distributions and a linear solve at each sample's (c^2, s^2): its score and log p(y | x)."""
    eye = torch.eye(2, dtype=torch.float64)
    c2 = torch.as_tensor(c2, dtype=torch.float64).expand(len(x))
    s2 = torch.as_tensor(s2, dtype=torch.float64).expand(len(x))
    scores, log_posts = [], []
    for i in range(len(x)):
        means, covs = c2[i].sqrt() * mix.means, c2[i] * mix.covs + s2[i] * eye
        joint = mix.weights.log() + torch.stack([gaussian_log_pdf(x[i], means[k], covs[k])
                                                 for k in range(mix.num_components)])
        resp = torch.softmax(joint, 0) if y is None else torch.nn.functional.one_hot(
            torch.tensor(y), mix.num_components).double()
        scores.append(-(resp[:, None] * torch.linalg.solve(covs, (x[i] - means)[..., None])[..., 0]).sum(0))
        log_posts.append(torch.log_softmax(joint, 0))
    return torch.stack(scores), torch.stack(log_posts)


EXACT = dict(rtol=1e-12, atol=1e-12)   # float32 anywhere on the way (0.3 -> 0.30000001) is off by ~1e-8


def test_noised_gaussians_and_noised_are_float64_for_float_levels():
    """c^2 = 0.3 and s^2 = 0.7 are not float32 numbers: the laws are exact to float64's precision."""
    mix, eye = overlapping(), torch.eye(2, dtype=torch.float64)
    means, covs = toy.noised_gaussians(mix.means, mix.covs, 0.3, 0.7)
    torch.testing.assert_close(means, math.sqrt(0.3) * mix.means, **EXACT)
    torch.testing.assert_close(covs, 0.3 * mix.covs + 0.7 * eye, **EXACT)
    noised = mix.noised(0.3)
    torch.testing.assert_close(noised.means, math.sqrt(0.3) * mix.means, **EXACT)
    torch.testing.assert_close(noised.covs, 0.3 * mix.covs + 0.7 * eye, **EXACT)


def test_noised_gaussians_stay_on_the_means_device():
    """Every tensor it builds lives on the means' device (checked on the meta device, CPU only)."""
    mix = overlapping()
    means, covs = toy.noised_gaussians(mix.means.to("meta"), mix.covs.to("meta"), 0.3, 0.7)
    assert means.device.type == "meta" and covs.device.type == "meta"
    assert means.shape == (3, 2) and covs.shape == (3, 2, 2) and covs.dtype == torch.float64


def test_noised_answers_are_float64_exact_for_float_levels():
    """noised_score, noised_log_posterior and denoised (Tweedie: (x + s^2 score) / c) at c^2 = 0.3,
    s^2 = 0.7 given as Python floats, against the law written out by hand, to 1e-12."""
    mix = overlapping()
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(8)) * 2
    for y in (None, 1):
        score, log_post = _exact_noised(mix, x, 0.3, 0.7, y)
        torch.testing.assert_close(mix.noised_score(x, 0.3, 0.7, y), score, **EXACT)
        torch.testing.assert_close(mix.denoised(x, 0.3, 0.7, y), (x + 0.7 * score) / math.sqrt(0.3), **EXACT)
    torch.testing.assert_close(mix.noised_log_posterior(x, 0.3, 0.7), log_post, **EXACT)


def test_noised_answers_without_noise_are_the_scaled_data_law():
    """s^2 = 0 is allowed: x = c x0 has law N(c mu_k, c^2 S_k), and E[x0 | x] = x / c exactly."""
    mix = overlapping()
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) * 2
    score, log_post = _exact_noised(mix, x, 0.3, 0.0)
    torch.testing.assert_close(mix.noised_score(x, 0.3, 0.0), score, **EXACT)
    torch.testing.assert_close(mix.noised_log_posterior(x, 0.3, 0.0), log_post, **EXACT)
    torch.testing.assert_close(mix.denoised(x, 0.3, 0.0), x / math.sqrt(0.3), **EXACT)
    torch.testing.assert_close(mix.noised_score(x, 1.0, 0.0), mix.score(x), **EXACT)


def test_noised_answers_per_sample_with_a_shared_signal_but_different_noise():
    """One c^2 for the whole batch but a different s^2 per sample is still one law per sample."""
    mix = overlapping()
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(10)) * 2
    c2 = torch.full((4,), 0.5, dtype=torch.float64)
    s2 = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    score, log_post = _exact_noised(mix, x, c2, s2)
    torch.testing.assert_close(mix.noised_score(x, c2, s2), score, **EXACT)
    torch.testing.assert_close(mix.noised_log_posterior(x, c2, s2), log_post, **EXACT)
    # and the other way round: one s^2, a different c^2 per sample
    score, log_post = _exact_noised(mix, x, s2 / 2, c2)
    torch.testing.assert_close(mix.noised_score(x, s2 / 2, c2), score, **EXACT)


def test_repr_rounds_weights_to_three_decimals():
    assert repr(toy.grid()) == "GaussianMixture2D(K=9, weights=[" + ", ".join(["0.111"] * 9) + "])"


def test_sklearn_shape_defaults_are_noise_0_08_and_seed_0():
    from sklearn.datasets import make_moons

    x, y = toy.sklearn_shape("moons", 60)
    ref_x, ref_y = make_moons(60, noise=0.08, random_state=0)
    assert torch.equal(y, torch.as_tensor(ref_y))
    torch.testing.assert_close(x.double(), (torch.as_tensor(ref_x) - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 2,
                               atol=1e-6, rtol=1e-6)
    x2, y2 = toy.sklearn_shape("circles", 60)
    x3, y3 = toy.sklearn_shape("circles", 60, noise=0.08, seed=0)
    assert torch.equal(x2, x3) and torch.equal(y2, y3)
