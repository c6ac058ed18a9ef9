"""Distances against closed forms and obvious orderings."""

import math

import pytest
import torch

from course_lib import sample_metrics


def test_sliced_wasserstein_of_a_shift_is_its_projected_length():
    x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([3.0, 0.0])
    # projected shift along unit u is 3 u_1; mean of u_1^2 over directions in 2-D is 1/2
    assert math.isclose(sample_metrics.sliced_wasserstein(x, x + shift, num_projections=2000), 3 / math.sqrt(2), rel_tol=0.03)
    assert sample_metrics.sliced_wasserstein(x, x) == 0.0


def test_sliced_wasserstein_handles_unequal_sizes_and_rejects_bad_input():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert sample_metrics.sliced_wasserstein(a, b) < 0.1
    with pytest.raises(ValueError, match="dimension"):
        sample_metrics.sliced_wasserstein(a, torch.randn(10, 3))
    with pytest.raises(ValueError, match="finite"):
        sample_metrics.sliced_wasserstein(a, torch.full((10, 2), float("nan")))


def test_frechet_distance_matches_gaussian_closed_form():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 3, generator=g, dtype=torch.float64) * 2 + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # |mu|^2 = 1; tr(I + 4I - 2 * 2I) = 3
    assert math.isclose(sample_metrics.frechet_distance(a, b), 4.0, rel_tol=0.03)
    assert sample_metrics.frechet_distance(a, a) < 1e-6


def test_mean_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert sample_metrics.mean_pairwise_distance(x) == 5.0
    assert sample_metrics.mean_pairwise_distance(torch.zeros(5, 1, 2, 2)) == 0.0
    with pytest.raises(ValueError, match="n >= 2"):
        sample_metrics.mean_pairwise_distance(torch.zeros(1, 2))


def test_precision_recall_orders_collapsed_and_spread_samples():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(1000, 2, generator=g)
    collapsed = torch.randn(1000, 2, generator=g) * 0.2
    far = torch.randn(1000, 2, generator=g) + 8
    p_c, r_c = sample_metrics.precision_recall(real, collapsed)
    p_f, r_f = sample_metrics.precision_recall(real, far)
    p_s, r_s = sample_metrics.precision_recall(real, torch.randn(1000, 2, generator=g))
    assert p_c > 0.95 and r_c < 0.3  # precise but not diverse
    assert p_f < 0.05 and r_f < 0.05
    assert p_s > 0.85 and r_s > 0.85
    with pytest.raises(ValueError, match="k must"):
        sample_metrics.precision_recall(real, far, k=0)


def test_relative_error():
    b = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert sample_metrics.relative_error(b, b) == 0.0
    assert sample_metrics.relative_error(torch.zeros(2, 2), b) == 1.0
    assert sample_metrics.relative_error(2 * b, b) == 1.0 and sample_metrics.relative_error(-b, b) == 4.0
    assert sample_metrics.relative_error(torch.ones(4, 1, 2, 2), torch.ones(4, 1, 2, 2) * 2) == 0.25
    with pytest.raises(ValueError, match="share their shape"):
        sample_metrics.relative_error(b, b[:1])


def test_frechet_gaussians_closed_form_and_shapes():
    eye = torch.eye(2, dtype=torch.float64)
    assert sample_metrics.frechet_gaussians(torch.zeros(2), eye, torch.tensor([3.0, 4.0]), eye) == pytest.approx(25.0)
    # tr(I + 4I - 2 * 2I) = 2 for d = 2
    assert sample_metrics.frechet_gaussians(torch.zeros(2), eye, torch.zeros(2), 4 * eye) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="cov_a"):
        sample_metrics.frechet_gaussians(torch.zeros(2), torch.eye(3), torch.zeros(2), eye)


def test_precision_recall_on_points_whose_answer_is_counted_by_hand():
    """real 0, 1, 2, 3 (k = 1: every radius 1); fake 0.5 (inside), 4 (exactly on point 3's ball: inside),
    5 (outside): precision 2/3. Fake radii 3.5, 1, 1 cover every real point: recall 1."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [4.0], [5.0]])
    assert sample_metrics.precision_recall(real, fake, k=1) == pytest.approx((2 / 3, 1.0))
    assert sample_metrics.precision_recall(real, fake, k=2)[0] == pytest.approx(1.0)   # radii 2, 1, 1, 2
    with pytest.raises(ValueError, match="k must be an integer in 1..2, got 3"):
        sample_metrics.precision_recall(real, fake, k=3)


def test_relative_error_of_small_vectors_and_its_arguments():
    ref = torch.full((3, 2), 2e-3, dtype=torch.float64)
    assert sample_metrics.relative_error(ref / 2, ref) == pytest.approx(0.25)
    assert sample_metrics.relative_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])) == pytest.approx(0.5)
    for bad in (torch.tensor(1.0), torch.zeros(0, 2), [1.0]):
        with pytest.raises(ValueError, match="estimate must be a tensor"):
            sample_metrics.relative_error(bad, ref)
        with pytest.raises(ValueError, match="reference must be a tensor"):
            sample_metrics.relative_error(ref, bad)
    with pytest.raises(ValueError, match="x must be a tensor"):
        sample_metrics.mean_pairwise_distance([[0.0], [1.0]])


def test_default_arguments_are_the_documented_ones():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 3, generator=g), torch.randn(60, 3, generator=g) + 0.3
    assert sample_metrics.sliced_wasserstein(a, b) == sample_metrics.sliced_wasserstein(a, b, num_projections=256, seed=0)
    assert sample_metrics.sliced_wasserstein(a, b) != sample_metrics.sliced_wasserstein(a, b, seed=1)
    assert sample_metrics.precision_recall(a, b) == sample_metrics.precision_recall(a, b, k=5)


def test_sliced_wasserstein_of_unequal_sets_counted_by_hand():
    """In 1-D every direction is +-1. a = {0, 1} read at b's four quantile levels 1/8, 3/8, 5/8, 7/8
    (linear interpolation) is 0.125, 0.375, 0.625, 0.875; b = {0, 0.5, 1, 1.5}; the squared gaps
    average 0.140625, so the distance is 0.375, whichever set comes first."""
    a, b = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.5], [1.0], [1.5]])
    assert sample_metrics.sliced_wasserstein(a, b) == pytest.approx(0.375)
    assert sample_metrics.sliced_wasserstein(b, a) == pytest.approx(0.375)


@pytest.mark.parametrize("bad", [torch.zeros(1, 2), torch.zeros(4), torch.zeros(4, 2, 1), [[0.0, 0.0]] * 4,
                                 torch.tensor([[0.0, float("inf")]] * 4)])
def test_sample_sets_are_checked_by_name(bad):
    good = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="^a must"):
        sample_metrics.sliced_wasserstein(bad, good)
    with pytest.raises(ValueError, match="^b must"):
        sample_metrics.sliced_wasserstein(good, bad)


def test_precision_recall_default_k_is_5():
    # real 0..7 on a line: the 5th-neighbour balls cover [-5, 12] (the 6th's [-6, 13]), so the
    # fakes at -5.5 and 12.5 fall outside at k = 5: precision 6/8; every real point lies in the
    # ball of the fake at 5 (radius 5), recall 1
    real = torch.arange(8.0)[:, None]
    fake = torch.tensor([-5.5, 12.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])[:, None]
    assert sample_metrics.precision_recall(real, fake) == (0.75, 1.0)
    assert sample_metrics.precision_recall(real, fake, k=5) == (0.75, 1.0)
    assert sample_metrics.precision_recall(real, fake, k=6)[0] == 1.0
