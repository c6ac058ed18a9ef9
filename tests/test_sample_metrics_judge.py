"""Scoring samples: the 2-D scorer and per-class fits against exact answers, the judge's verdicts,
confusion and per-class accuracy by hand, metrics wired to the library, and the shipped
MNIST weights' quality."""

import math

import numpy as np
import pytest
import torch

from course_lib import conditional, diffusion, guidance, pretrained, sample_metrics, toy
from course_lib.unet import ImageClassifier

S = diffusion.make_schedule("linear", 1000)
MIX = toy.anisotropic()


@pytest.fixture(scope="module")
def mixture():
    return MIX


@pytest.fixture(scope="module")
def schedule():
    return S


def test_score_2d_on_exact_class_samples():
    x, _ = MIX.sample(2000, y=2, generator=torch.Generator().manual_seed(6))
    ref, _ = MIX.sample(2000, y=2, generator=torch.Generator().manual_seed(7))
    s = sample_metrics.score_2d(x, MIX, 2, ref, extent=(-4.5, 4.5, -4.5, 4.5))
    assert s["posterior"] > 0.9 and s["sw"] < 0.1 and s["off_plot"] == 0
    assert s["precision"] > 0.85 and s["recall"] > 0.85 and s["agreement"] > 0.9
    # mean distance of two independent N(mu, S) draws: about sqrt(2) * the scale of S
    assert 1.0 < s["diversity"] < 2.5
    far = x.clone()
    far[:10] += 100.0
    far[10] = float("nan")
    scored = sample_metrics.score_2d(far, MIX, 2, ref, extent=(-4.5, 4.5, -4.5, 4.5))
    assert scored["off_plot"] == 11 and math.isfinite(scored["sw"])
    assert "off_plot" not in sample_metrics.score_2d(x, MIX, 2, ref) and "precision" not in sample_metrics.score_2d(x, MIX, 2, ref,
                                                                                                        k=None)
    marginal = sample_metrics.score_2d(x, MIX, None, ref, k=None)
    assert math.isnan(marginal["posterior"]) and math.isnan(marginal["agreement"])
    with pytest.raises(ValueError, match="y must lie"):
        sample_metrics.score_2d(x, MIX, 3, ref)
    with pytest.raises(ValueError, match="extent"):
        sample_metrics.score_2d(x, MIX, 2, ref, extent=(1, 0, 0, 1))


def test_score_2d_is_the_metrics_of_the_library():
    x = MIX.sample(300, y=1, generator=torch.Generator().manual_seed(1))[0]
    ref = MIX.sample(300, y=1, generator=torch.Generator().manual_seed(2))[0]
    s = sample_metrics.score_2d(x, MIX, 1, ref, k=5)
    assert (s["precision"], s["recall"]) == sample_metrics.precision_recall(ref, x, k=5)
    assert s["sw"] == sample_metrics.sliced_wasserstein(x, ref) and s["diversity"] == sample_metrics.mean_pairwise_distance(x)
    assert s["posterior"] == pytest.approx(float(MIX.posterior(x.double())[:, 1].mean()))


def test_oracle_conditionals_fit_at_the_noise_floor(mixture, schedule):
    """A perfect model's samples of every p(x | y), and of p(x) with the null label,
    are as close to exact samples as two exact sample sets are to each other."""
    oracle = toy.OracleDenoiser(mixture, schedule)
    samples = conditional.sample_by_label(oracle, [0, 1, 2, 3], 1000, schedule, steps=50, eta=1.0, seed=5)
    assert set(samples) == {0, 1, 2, 3} and all(s.shape == (1000, 2) for s in samples.values())
    fits = sample_metrics.fit_by_class(samples, mixture, seed=11)
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
    fit = sample_metrics.fit_by_class(wrong, mixture)[1]
    assert fit.sw > 10 * fit.floor and fit.agreement < 0.1


def test_fit_by_class_checks_labels(mixture):
    with pytest.raises(ValueError, match="samples"):
        sample_metrics.fit_by_class({5: torch.zeros(10, 2)}, mixture)


def test_metrics_are_wired_to_the_library(tiny):
    judge = tiny[2]
    images = torch.rand(20, 1, 28, 28) * 2 - 1
    labels = conditional.grid_labels(2)
    predicted = judge(images).argmax(1)
    assert sample_metrics.judged_accuracy(judge, images, predicted) == 1.0
    assert sample_metrics.judged_accuracy(judge, images, (predicted + 1) % 10) == 0.0
    expected = np.mean([sample_metrics.mean_pairwise_distance(images[labels == k]) for k in range(10)])
    assert sample_metrics.within_class_diversity(images, labels) == pytest.approx(expected)
    feats = sample_metrics.judge_features(judge, images)
    assert feats.shape == (20, 16)
    other = torch.rand(30, 1, 28, 28) * 2 - 1
    with torch.no_grad():   # the judge's features are its penultimate layer, batched or not
        assert torch.allclose(sample_metrics.judge_features(judge, other, batch_size=7), judge.features(other), atol=1e-6)


def test_judge_cfg_model_grades_the_same_noise_at_every_w(tiny):
    model, _, judge = tiny
    by_w = sample_metrics.judge_cfg_model(model, judge, ws=(-1.0, 2.0), per_class=1, steps=2, seed=4)
    assert list(by_w) == ["-1", "2"]
    x_T, labels = conditional.grid_noise(1, seed=4), conditional.grid_labels(1)
    assert by_w["2"] == sample_metrics.judged_accuracy(judge, conditional.cfg_grid(model, 2.0, x_T, 2), labels)


def test_bad_judge_inputs_raise_value_error(tiny):
    judge = tiny[2]
    with pytest.raises(ValueError, match="at least 2 samples"):
        sample_metrics.within_class_diversity(torch.zeros(3, 1, 28, 28), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="y must lie in 0..9"):
        sample_metrics.judged_accuracy(judge, torch.zeros(2, 1, 28, 28), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="images must be"):
        sample_metrics.judged_accuracy(judge, torch.zeros(2, 28, 28), torch.tensor([0, 1]))


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    asked = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])  # K = 3; label 3 is the null label
    judged = torch.tensor([0, 0, 2, 0, 1, 2, 1, 2])
    confusion = sample_metrics.confusion_matrix(asked, judged, 3)
    assert confusion.tolist() == [[2, 0, 1], [1, 1, 0], [0, 0, 1], [0, 1, 1]]
    accuracy = sample_metrics.per_class_accuracy(confusion)
    assert accuracy.dtype == torch.float64
    torch.testing.assert_close(accuracy, torch.tensor([2 / 3, 1 / 2, 1.0], dtype=torch.float64))
    empty = sample_metrics.per_class_accuracy(sample_metrics.confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2))
    assert empty[0] == 1.0 and math.isnan(empty[1])  # no samples asked for label 1


@pytest.mark.parametrize("asked, judged, match", [
    (torch.tensor([0, 4]), torch.tensor([0, 1]), "asked"), (torch.tensor([0, 3]), torch.tensor([0, 3]), "judged"),
    (torch.tensor([0, 1]), torch.tensor([0]), "judged"), (torch.tensor([[0]]), torch.tensor([0]), "asked")])
def test_confusion_matrix_rejects_bad_labels(asked, judged, match):
    with pytest.raises(ValueError, match=match):
        sample_metrics.confusion_matrix(asked, judged, 3)


def test_per_class_accuracy_rejects_bad_shapes():
    for bad in (torch.zeros(3, 5), torch.zeros(4), torch.zeros(5, 3)):
        with pytest.raises(ValueError, match="confusion"):
            sample_metrics.per_class_accuracy(bad)


def test_judge_verdicts_are_the_argmax_in_batches():
    torch.manual_seed(0)
    judge = ImageClassifier(feature_dim=16).eval()
    images = torch.rand(25, 1, 28, 28) * 2 - 1
    verdicts = sample_metrics.judge_verdicts(judge, images, batch_size=7)
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
    x0 = conditional.sample_with_labels(oracle, asked, x_T, schedule, steps=50, eta=1.0,
                                         generator=torch.Generator().manual_seed(1))
    bayes = sample_metrics.judge_verdicts(lambda x: mixture.posterior(x).log(), x0)
    confusion = sample_metrics.confusion_matrix(asked, bayes, K)
    accuracy = sample_metrics.per_class_accuracy(confusion)
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
    p, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge").model
    labels = conditional.grid_labels(6)
    x = conditional.sample_with_labels(p.model, labels, conditional.grid_noise(6, seed=1), p.schedule, steps=20,
                                        clip=1.0)
    null = conditional.sample_with_labels(p.model, torch.full((60,), 10), conditional.grid_noise(6, seed=2), p.schedule,
                                           steps=20, clip=1.0)
    confusion = sample_metrics.confusion_matrix(torch.cat([labels, torch.full((60,), 10)]),
                                              sample_metrics.judge_verdicts(judge, torch.cat([x, null])), 10)
    accuracy = sample_metrics.per_class_accuracy(confusion)
    assert accuracy.mean() > 0.4, accuracy
    assert abs(accuracy.mean() - sample_metrics.judged_accuracy(judge, x, labels)) < 1e-9  # balanced: mean = overall
    assert (confusion[10] > 0).sum() >= 6, confusion[10]


def test_shipped_mnist_cfg_draws_the_digits_it_is_asked_for():
    """Cheap but telling: 100 digits at w = 3, 20 DDIM steps, through the public API,
    judged by the independent clean classifier. A broken model sits near chance (0.1)."""
    cfg, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge")
    labels = conditional.grid_labels(10)
    x_T = conditional.grid_noise(10, seed=123)
    eps_fn = guidance.model_cfg_eps_fn(cfg.model, labels, 3.0, cfg.num_classes)
    images = diffusion.sample(eps_fn, (100, 1, 28, 28), cfg.schedule, steps=20, eta=0.0, x_T=x_T).clamp(-1, 1)
    accuracy = sample_metrics.judged_accuracy(judge.model, images, labels)
    assert accuracy >= 0.85, accuracy
    unguided = conditional.cfg_grid(cfg.model, -1.0, x_T, 20, schedule=cfg.schedule)
    assert sample_metrics.judged_accuracy(judge.model, unguided, labels) < 0.5  # labels are not decoration
