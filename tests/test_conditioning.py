"""Explicit conditioning against exact answers: label dropout's rate, class
subsampling, and per-class fits of a perfect (oracle) conditional model."""

import math

import pytest
import torch

from course_lib import conditioning, diffusion, toy


@pytest.fixture(scope="module")
def mixture():
    return toy.anisotropic()


@pytest.fixture(scope="module")
def schedule():
    return diffusion.make_schedule("linear", 1000)


def test_drop_labels_rate_and_values():
    y = torch.randint(0, 3, (20_000,), generator=torch.Generator().manual_seed(0))
    out = conditioning.drop_labels(y, 0.15, 3, generator=torch.Generator().manual_seed(1))
    dropped = out == 3
    assert abs(dropped.double().mean().item() - 0.15) < 4 * math.sqrt(0.15 * 0.85 / 20_000)
    assert torch.equal(out[~dropped], y[~dropped])  # kept labels are untouched
    assert torch.equal(conditioning.drop_labels(y, 0.0, 3), y)
    assert (conditioning.drop_labels(y, 1.0, 3) == 3).all()


def test_drop_labels_matches_train_diffusion_draws():
    """Same generator, same draws as the inline dropout of ``train.train_diffusion``."""
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ref = torch.where(torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5, torch.full_like(y, 3), y)
    assert torch.equal(conditioning.drop_labels(y, 0.5, 3, generator=torch.Generator().manual_seed(3)), ref)


@pytest.mark.parametrize("bad", [dict(p_uncond=1.5), dict(p_uncond=float("nan")), dict(null_label=0),
                                 dict(y=torch.tensor([0, 4])), dict(y=torch.tensor([0.0, 1.0]))])
def test_drop_labels_rejects_bad_arguments(bad):
    args = dict(y=torch.tensor([0, 1, 2]), p_uncond=0.1, null_label=3) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        conditioning.drop_labels(**args)


def test_subsample_class_keeps_others_and_counts(mixture):
    x, y = mixture.sample(5000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(y, minlength=3)
    xs, ys = conditioning.subsample_class(x, y, 2, 40, generator=torch.Generator().manual_seed(1))
    assert torch.bincount(ys, minlength=3).tolist() == [counts[0], counts[1], 40]
    assert torch.equal(xs[ys != 2], x[y != 2])  # the other classes, in order
    kept = xs[ys == 2]
    assert all((x[y == 2] == p).all(1).any() for p in kept)  # real examples of class 2, no invented ones
    _, yf = conditioning.subsample_class(x, y, 2, 0.02, generator=torch.Generator().manual_seed(1))
    assert (yf == 2).sum() == round(0.02 * int(counts[2]))


@pytest.mark.parametrize("keep", [-1, 10**6, 0.0, 1.5, True, "all"])
def test_subsample_class_rejects_bad_keep(mixture, keep):
    x, y = mixture.sample(100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="keep"):
        conditioning.subsample_class(x, y, 0, keep)


def test_subsample_class_rejects_absent_label(mixture):
    x, y = mixture.sample(100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="label"):
        conditioning.subsample_class(x, y, 7, 10)


def test_oracle_conditionals_fit_at_the_noise_floor(mixture, schedule):
    """A perfect model's samples of every p(x | y), and of p(x) with the null label,
    are as close to exact samples as two exact sample sets are to each other."""
    oracle = toy.OracleDenoiser(mixture, schedule)
    samples = conditioning.sample_by_label(oracle, [0, 1, 2, 3], 1000, schedule, steps=50, eta=1.0, seed=5)
    assert set(samples) == {0, 1, 2, 3} and all(s.shape == (1000, 2) for s in samples.values())
    fits = conditioning.fit_by_class(samples, mixture, seed=11)
    for y, fit in fits.items():
        assert fit.label == y and fit.n == 1000
        assert fit.sw < 2.5 * fit.floor + 0.02, fit
    for y in range(3):
        assert abs(fits[y].agreement - fits[y].exact_agreement) < 0.03, fits[y]
        assert fits[y].exact_agreement > 0.9
    assert math.isnan(fits[3].agreement)


def test_fit_by_class_tells_wrong_class_apart(mixture):
    """Samples of class 0 presented as class 1 fit badly and disagree with the label."""
    wrong = {1: mixture.sample(1000, y=0, generator=torch.Generator().manual_seed(0))[0]}
    fit = conditioning.fit_by_class(wrong, mixture)[1]
    assert fit.sw > 10 * fit.floor and fit.agreement < 0.1


def test_sample_by_label_is_reproducible_and_checks_labels(mixture, schedule):
    oracle = toy.OracleDenoiser(mixture, schedule)
    a = conditioning.sample_by_label(oracle, [1], 50, schedule, steps=10, seed=3)
    b = conditioning.sample_by_label(oracle, [1], 50, schedule, steps=10, seed=3)
    assert torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="labels"):
        conditioning.sample_by_label(oracle, [4], 50, schedule)
    with pytest.raises(ValueError, match="samples"):
        conditioning.fit_by_class({5: a[1]}, mixture)
