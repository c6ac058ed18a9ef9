"""Mixture additions of lesson 05 (labels, broadened, conditional, product, branches) against closed forms."""

import math

import pytest
import torch

from course_lib import diffusion, toy

P = toy.GaussianMixture2D([[0.0, 0.0], [1.2, -0.4], [-0.8, 1.5]],
                          [[[0.9, 0.5], [0.5, 0.7]], [[0.25, -0.1], [-0.1, 1.1]], [[0.4, 0.0], [0.0, 0.15]]],
                          [0.6, 0.15, 0.25], labels=[1, 0, 1])
Q = toy.GaussianMixture2D([[0.5, 0.5], [-1.0, 0.0]], [[[0.3, 0.1], [0.1, 0.6]], [[1.0, 0.0], [0.0, 0.2]]],
                          [0.3, 0.7])
S = diffusion.make_schedule("linear", 1000)
X = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5


def _grid(half: float = 6.0, n: int = 301):
    xs = torch.linspace(-half, half, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], 1), (xs[1] - xs[0]) ** 2


def test_labels_group_components_into_classes():
    assert (P.num_classes, P.num_components) == (2, 3)
    joint = torch.stack([P.weights[k] * torch.exp(toy.GaussianMixture2D(P.means[k:k + 1], P.covs[k:k + 1], [1.0])
                                                  .log_prob(X)) for k in range(3)], 1)
    class_1 = (joint[:, 0] + joint[:, 2]) / (P.weights[0] + P.weights[2])
    torch.testing.assert_close(P.log_prob(X, 1), class_1.log())
    torch.testing.assert_close(P.posterior(X)[:, 1], (joint[:, 0] + joint[:, 2]) / joint.sum(1))
    x = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(P.log_prob(x, 1).sum(), x)
    torch.testing.assert_close(P.score(X, 1), grad)


def test_labelled_eps_fn_and_classifier_are_the_noised_answers():
    t = torch.full((X.shape[0],), 300, dtype=torch.long)
    noised = P.noised(float(S.alpha_bars[300]))
    torch.testing.assert_close(P.eps_fn(S, 1)(X, t), -S.sigmas[300] * noised.score(X, 1))
    torch.testing.assert_close(P.log_posterior_fn(S)(X, t).exp(), noised.posterior(X))


def test_labelled_sampling_draws_the_class_mixture():
    x, y = P.sample(40000, y=1, generator=torch.Generator().manual_seed(1))
    assert (y == 1).all()
    share = P.weights[[0, 2]] / P.weights[[0, 2]].sum()
    expected = (share[:, None] * P.means[[0, 2]]).sum(0)
    torch.testing.assert_close(x.double().mean(0), expected, atol=0.03, rtol=0)
    _, y_all = P.sample(40000, generator=torch.Generator().manual_seed(2))
    assert abs(float((y_all == 1).double().mean()) - float(P.weights[[0, 2]].sum())) < 0.01


def test_broadened_adds_delta_squared_and_zero_is_identity():
    b = P.broadened(0.5)
    torch.testing.assert_close(b.covs, P.covs + 0.25 * torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(b.means, P.means)
    assert torch.equal(b.labels, P.labels)
    torch.testing.assert_close(P.broadened(0.0).log_prob(X), P.log_prob(X))
    torch.testing.assert_close(P.broadened(torch.tensor(0.5)).covs, b.covs)
    # delta^2 = 0.09 is not a float32 number: added in float64, exact to the last digits
    torch.testing.assert_close(P.broadened(0.3).covs, P.covs + 0.3**2 * torch.eye(2, dtype=torch.float64),
                               rtol=1e-15, atol=0)


def test_product_matches_normalised_product_density_on_a_grid():
    prod = P.product(Q)
    pts, cell = _grid()
    log_unnorm = P.log_prob(pts) + Q.log_prob(pts)
    expected = log_unnorm - (torch.logsumexp(log_unnorm, 0) + math.log(cell))
    assert float((prod.log_prob(pts).exp() - expected.exp()).abs().max()) < 1e-6
    assert float((prod.log_prob(pts).exp() * cell).sum()) == pytest.approx(1.0, abs=1e-6)
    # class y_p * C_q + y_q is the normalised product of the two class densities
    assert prod.num_classes == 4
    log_unnorm = P.log_prob(pts, 1) + Q.log_prob(pts, 0)
    expected = log_unnorm - (torch.logsumexp(log_unnorm, 0) + math.log(cell))
    assert float((prod.log_prob(pts, 1 * 2 + 0).exp() - expected.exp()).abs().max()) < 1e-6


def test_conditional_is_the_class_density():
    torch.testing.assert_close(P.conditional(1).log_prob(X), P.log_prob(X, 1))
    torch.testing.assert_close(P.conditional(0).log_prob(X), P.log_prob(X, 0))


def test_branches_is_thin_two_class_and_has_gaps():
    m = toy.branches()
    assert m.num_classes == 2 and m.num_components == 90
    assert float(torch.linalg.eigvalsh(m.covs)[:, 0].sqrt().max()) <= 0.06 + 1e-12
    # blurring moves mass off the branches: exact samples of the broadened law sit at lower exact density
    g = torch.Generator().manual_seed(0)
    sharp, blurred = m.sample(4000, generator=g)[0], m.broadened(0.15).sample(4000, generator=g)[0]
    gap = m.log_prob(sharp).quantile(0.05)                     # 5% of exact samples lie below this density
    assert float((m.log_prob(blurred) < gap).double().mean()) > 0.3


@pytest.mark.parametrize("call, name", [
    (lambda: P.broadened(-0.1), "delta"),
    (lambda: P.broadened(float("nan")), "delta"),
    (lambda: P.product("q"), "other"),
    (lambda: P.conditional(2), "y"),
    (lambda: toy.GaussianMixture2D(P.means, P.covs, P.weights, labels=[0, 2, 2]), "labels"),
    (lambda: toy.GaussianMixture2D(P.means, P.covs, P.weights, labels=[0, 1]), "labels"),
    (lambda: toy.branches(depth=0), "depth"),
    (lambda: toy.branches(depth=1.5), "depth"),
    (lambda: toy.branches(depth=True), "depth"),
    (lambda: toy.branches(per_branch=0), "per_branch"),
    (lambda: toy.branches(thickness=-1.0), "thickness"),
    (lambda: toy.branches(thickness=0.0), "thickness"),
    (lambda: toy.branches(length=float("inf")), "length"),
    (lambda: toy.branches(length=True), "length"),
    (lambda: toy.branches(length=0.0), "length"),
    (lambda: toy.branches(length=-1.0), "length"),
    (lambda: toy.GaussianMixture2D(P.means, P.covs, P.weights, labels=[0, -1, 1]), "labels must be \\[K\\]"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match="^" + name):
        call()


def test_branches_of_depth_one_with_one_gaussian_per_branch():
    m = toy.branches(depth=1, per_branch=1, length=1.0, thickness=0.1)
    assert m.num_components == 2 and m.labels.tolist() == [0, 1]


def test_product_keeps_a_vanishing_weight_at_the_floor():
    """Components 60 apart overlap by e^-900 relative: the weight is raised to 1e-300 of the largest."""
    one = toy.GaussianMixture2D([[0.0, 0.0]], [torch.eye(2).tolist()], [1.0])
    two = toy.GaussianMixture2D([[0.0, 0.0], [60.0, 0.0]], [torch.eye(2).tolist()] * 2, [1.0, 1.0])
    w = one.product(two).weights
    assert float(w[1] / w[0]) == pytest.approx(1e-300, rel=1e-6)


def test_branches_score_is_the_gradient_of_log_prob():
    m = toy.branches()
    x = m.sample(100, generator=torch.Generator().manual_seed(3))[0].double() + 0.05
    for y in [None, 0, 1]:
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(m.log_prob(xg, y).sum(), xg)
        torch.testing.assert_close(m.score(x, y), grad)


def test_product_covariances_are_exactly_symmetric():
    """linalg.inv of a symmetric matrix need not be symmetric to the last bit (of P's product with
    itself, 3 of the 9 inverses are not, on CPU); the product's covariances are."""
    for other in (Q, P):
        covs = P.product(other).covs
        assert torch.equal(covs, covs.transpose(1, 2))


def test_product_of_far_apart_mixtures_keeps_the_relative_weights():
    """Every overlap is tiny (log weights about -400): the weights are still
    pi_k rho_j N(mu_k; nu_j, S_k + R_j) normalised, here in the ratio e^-(45^2 - 40^2)/4 = e^-106.25."""
    one = toy.GaussianMixture2D([[0.0, 0.0]], [torch.eye(2).tolist()], [1.0])
    two = toy.GaussianMixture2D([[40.0, 0.0], [45.0, 0.0]], [torch.eye(2).tolist()] * 2, [1.0, 1.0])
    prod = one.product(two)
    assert float(prod.weights[1] / prod.weights[0]) == pytest.approx(math.exp(-106.25), rel=1e-9)
    torch.testing.assert_close(prod.means, torch.tensor([[20.0, 0.0], [22.5, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(prod.covs, 0.5 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2))
