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


# --------------------------------------------------------------------------- images (MNIST) and the judge

@pytest.fixture(scope="module")
def tiny_unet():
    """A small random conditional U-Net: fast, and its output depends on x, t and y."""
    from course_lib.unet import ConditionalUNet

    torch.manual_seed(0)
    return ConditionalUNet(base_channels=8, emb_dim=8).eval()


def test_sample_with_labels_is_the_public_sampler_with_the_label_alone(tiny_unet, schedule):
    from course_lib import digits, guidance

    x_T = digits.grid_noise(1, seed=0)
    labels = torch.arange(10)
    images = conditioning.sample_with_labels(tiny_unet, labels, x_T, schedule, steps=3, clip=1.0)
    direct = diffusion.sample(guidance.model_eps_fn(tiny_unet, labels, 10), (10, 1, 28, 28), schedule, steps=3,
                              eta=0.0, x_T=x_T).clamp(-1, 1)
    torch.testing.assert_close(images, direct)
    # classifier-free guidance at w = 0 is the label alone, and at w = -1 the null label
    torch.testing.assert_close(images, digits.cfg_grid(tiny_unet, 0.0, x_T, steps=3, schedule=schedule),
                               atol=1e-4, rtol=1e-4)  # batches of 20 vs 10: float noise only
    null = conditioning.sample_with_labels(tiny_unet, torch.full((10,), 10), x_T, schedule, steps=3, clip=1.0)
    torch.testing.assert_close(null, digits.cfg_grid(tiny_unet, -1.0, x_T, steps=3, schedule=schedule),
                               atol=1e-4, rtol=1e-4)  # batches of 20 vs 10: float noise only
    unclipped = conditioning.sample_with_labels(tiny_unet, labels, x_T, schedule, steps=3)
    torch.testing.assert_close(unclipped.clamp(-1, 1), images)


def test_sample_with_labels_stochastic_draws_come_from_the_generator(tiny_unet, schedule):
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    draw = [conditioning.sample_with_labels(tiny_unet, 3, x_T, schedule, steps=3, eta=1.0,
                                            generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    torch.testing.assert_close(draw[0], draw[1])
    assert (draw[0] - draw[2]).abs().max() > 1e-4


@pytest.mark.parametrize("bad, match", [
    (dict(labels=torch.tensor([0, 11])), "labels"), (dict(labels=torch.tensor([0, 1, 2])), "labels"),
    (dict(labels=torch.tensor([0.0, 1.0])), "labels"), (dict(x_T=torch.full((2, 1, 28, 28), float("nan"))), "x_T"),
    (dict(schedule=diffusion.make_schedule("linear", 500)), "schedule"), (dict(clip=0.0), "clip"),
    (dict(clip=True), "clip")])
def test_sample_with_labels_rejects_bad_arguments(tiny_unet, schedule, bad, match):
    args = dict(labels=torch.tensor([0, 10]), x_T=torch.zeros(2, 1, 28, 28), schedule=schedule) | bad
    with pytest.raises(ValueError, match=match):
        conditioning.sample_with_labels(tiny_unet, steps=2, **args)


def test_noise_under_labels_layout():
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    noise, y = conditioning.noise_under_labels(x_T, range(11))
    assert noise.shape == (33, 1, 28, 28) and y.tolist() == list(range(11)) * 3
    for r in range(3):
        for j in range(11):
            assert torch.equal(noise[r * 11 + j], x_T[r])  # row r shares noise r; column j has label j
    _, y2 = conditioning.noise_under_labels(x_T[:, 0, 0, :2], torch.tensor([4, 7]))
    assert y2.tolist() == [4, 7] * 3
    for bad in ([], [-1], [1.5], [True], "01"):
        with pytest.raises(ValueError, match="labels"):
            conditioning.noise_under_labels(x_T, bad)
    with pytest.raises(ValueError, match="x_T"):
        conditioning.noise_under_labels(torch.zeros(3), [0])


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    asked = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])  # K = 3; label 3 is the null label
    judged = torch.tensor([0, 0, 2, 0, 1, 2, 1, 2])
    confusion = conditioning.confusion_matrix(asked, judged, 3)
    assert confusion.tolist() == [[2, 0, 1], [1, 1, 0], [0, 0, 1], [0, 1, 1]]
    accuracy = conditioning.per_class_accuracy(confusion)
    assert accuracy.dtype == torch.float64
    torch.testing.assert_close(accuracy, torch.tensor([2 / 3, 1 / 2, 1.0], dtype=torch.float64))
    empty = conditioning.per_class_accuracy(conditioning.confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2))
    assert empty[0] == 1.0 and math.isnan(empty[1])  # no samples asked for label 1


@pytest.mark.parametrize("asked, judged, match", [
    (torch.tensor([0, 4]), torch.tensor([0, 1]), "asked"), (torch.tensor([0, 3]), torch.tensor([0, 3]), "judged"),
    (torch.tensor([0, 1]), torch.tensor([0]), "judged"), (torch.tensor([[0]]), torch.tensor([0]), "asked")])
def test_confusion_matrix_rejects_bad_labels(asked, judged, match):
    with pytest.raises(ValueError, match=match):
        conditioning.confusion_matrix(asked, judged, 3)


def test_per_class_accuracy_rejects_bad_shapes():
    for bad in (torch.zeros(3, 5), torch.zeros(4), torch.zeros(5, 3)):
        with pytest.raises(ValueError, match="confusion"):
            conditioning.per_class_accuracy(bad)


def test_judge_verdicts_are_the_argmax_in_batches():
    from course_lib.unet import ImageClassifier

    torch.manual_seed(0)
    judge = ImageClassifier(feature_dim=16).eval()
    images = torch.rand(25, 1, 28, 28) * 2 - 1
    verdicts = conditioning.judge_verdicts(judge, images, batch_size=7)
    assert verdicts.dtype == torch.long and verdicts.shape == (25,)
    with torch.no_grad():
        assert torch.equal(verdicts, judge(images).argmax(1))


def test_a_perfect_model_obeys_its_labels_as_often_as_exact_samples(mixture, schedule):
    """The exact denoiser, sampled with the label alone and graded by the exact Bayes label
    (a perfect judge), agrees with each label as often as exact samples of p(x | y) do, and its
    null-label samples fall into each class in the proportion pi_k."""
    K, n = mixture.num_classes, 600
    oracle = toy.OracleDenoiser(mixture, schedule)
    asked = torch.arange(K + 1).repeat(n)
    x_T = torch.randn(len(asked), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = conditioning.sample_with_labels(oracle, asked, x_T, schedule, steps=50, eta=1.0,
                                         generator=torch.Generator().manual_seed(1))
    bayes = conditioning.judge_verdicts(lambda x: mixture.posterior(x).log(), x0)
    confusion = conditioning.confusion_matrix(asked, bayes, K)
    accuracy = conditioning.per_class_accuracy(confusion)
    for k in range(K):
        exact = mixture.sample(4000, y=k, generator=torch.Generator().manual_seed(10 + k))[0]
        exact_agreement = (mixture.posterior(exact).argmax(1) == k).double().mean()
        assert abs(accuracy[k] - exact_agreement) < 4 * math.sqrt(0.1 / n), (k, accuracy[k], exact_agreement)
    shares = confusion[K].double() / n
    exact_shares = mixture.posterior(mixture.sample(20_000, generator=torch.Generator().manual_seed(20))[0]).argmax(1)
    exact_shares = torch.bincount(exact_shares, minlength=K).double() / 20_000
    assert (shares - exact_shares).abs().max() < 4 * math.sqrt(0.25 / n)


def test_shipped_mnist_model_obeys_labels_well_above_chance():
    """The shipped mnist_cfg, label alone (w = 0), graded by the shipped judge: far above chance
    (0.1) on every label taken together, and its null-label samples cover several digits."""
    from course_lib import digits, pretrained

    p, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge").model
    labels = digits.grid_labels(6)
    x = conditioning.sample_with_labels(p.model, labels, digits.grid_noise(6, seed=1), p.schedule, steps=20,
                                        clip=1.0)
    null = conditioning.sample_with_labels(p.model, torch.full((60,), 10), digits.grid_noise(6, seed=2), p.schedule,
                                           steps=20, clip=1.0)
    confusion = conditioning.confusion_matrix(torch.cat([labels, torch.full((60,), 10)]),
                                              conditioning.judge_verdicts(judge, torch.cat([x, null])), 10)
    accuracy = conditioning.per_class_accuracy(confusion)
    assert accuracy.mean() > 0.4, accuracy
    assert abs(accuracy.mean() - digits.judged_accuracy(judge, x, labels)) < 1e-9  # balanced: mean = overall
    assert (confusion[10] > 0).sum() >= 6, confusion[10]


def test_plot_helpers_label_what_they_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = torch.rand(22, 1, 28, 28) * 2 - 1
    ax = conditioning.digit_table(images, 11, col_labels=[*range(10), "∅"], row_labels=["a", "b"], title="t")
    texts = [t.get_text() for t in ax.texts]
    assert texts == [*map(str, range(10)), "∅", "a", "b"] and ax.get_title() == "t"
    with pytest.raises(ValueError, match="col_labels"):
        conditioning.digit_table(images, 11, col_labels=range(10))
    with pytest.raises(ValueError, match="row_labels"):
        conditioning.digit_table(images, 11, row_labels=["a"])
    confusion = conditioning.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 2)
    ax = conditioning.plot_confusion(confusion, title="c")
    assert [t.get_text() for t in ax.texts] == ["50", "50", "100", "100"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "∅"] and ax.get_xlabel() == "judged as"
    with pytest.raises(ValueError, match="confusion"):
        conditioning.plot_confusion(torch.zeros(4, 2))
    plt.close("all")
