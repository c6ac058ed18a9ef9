"""Classifier metrics against closed forms: the exact posterior is the Bayes classifier
at every t, uniform guesses cost log K nats, a doubled log-probability doubles the gradient,
and a linear softmax classifier has the gradient W_k - sum_j p_j W_j."""

import math

import pytest
import torch

from course_lib import classifier_metrics, diffusion, guidance, toy
from course_lib.unet import NoisyImageClassifier

MIX = toy.anisotropic()
S = diffusion.make_schedule("linear", 1000)
EXACT = MIX.log_posterior_fn(S)
ORACLE_CLF = toy.OracleClassifier(MIX, S)


def uniform(x, t):
    return torch.full((x.shape[0], 3), -math.log(3.0), dtype=x.dtype) + 0 * x[:, :1]


def test_exact_posterior_accuracy_is_the_bayes_accuracy():
    # Bayes accuracy = E[max_k p(k | x_t)]: estimate it from the same samples two ways
    x_t, t, y = classifier_metrics.noised_samples(MIX, S, 300, 20_000, torch.Generator().manual_seed(1))
    posterior = MIX.noised(S.alpha_bars[300].item()).posterior(x_t)
    acc = classifier_metrics.accuracy(EXACT, x_t, t, y)
    assert abs(acc - posterior.max(1).values.mean().item()) < 0.01
    assert classifier_metrics.accuracy(lambda x, tt: torch.log(torch.nn.functional.one_hot(y, 3).double() + 1e-9), x_t, t, y) == 1.0


def test_cross_entropy_of_uniform_and_exact():
    x_t, t, y = classifier_metrics.noised_samples(MIX, S, 200, 20_000, torch.Generator().manual_seed(2))
    assert classifier_metrics.cross_entropy(uniform, x_t, t, y) == pytest.approx(math.log(3), abs=1e-6)
    # the exact posterior's cross-entropy is the conditional entropy H(Y | X_t) = E[entropy of p(. | x_t)]
    p = MIX.noised(S.alpha_bars[200].item()).posterior(x_t)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1).mean().item()
    assert classifier_metrics.cross_entropy(EXACT, x_t, t, y) == pytest.approx(entropy, abs=0.02)


def test_metrics_vs_t_shares_samples_and_falls_to_the_majority_class():
    out = classifier_metrics.metrics_vs_t({"exact": EXACT, "copy": EXACT, "uniform": uniform}, MIX, S, [0, 300, 999], n=4000)
    assert out["exact"] == out["copy"]  # the same samples for every classifier
    acc = out["exact"]["accuracy"]
    assert acc[0] > acc[1] > acc[2] and abs(acc[2] - MIX.weights.max().item()) < 0.03
    assert out["uniform"]["cross_entropy"] == pytest.approx([math.log(3)] * 3, abs=1e-6)
    with pytest.raises(ValueError, match="log_prob_fns"):
        classifier_metrics.metrics_vs_t({}, MIX, S, [0])


def test_gradient_error_closed_forms():
    x_t, t, _ = classifier_metrics.noised_samples(MIX, S, 400, 500, torch.Generator().manual_seed(3))
    same = classifier_metrics.gradient_error(EXACT, EXACT, x_t, t, 2)
    assert same["relative_error"] < 1e-10 and same["cosine"] == pytest.approx(1.0)
    doubled = classifier_metrics.gradient_error(lambda x, tt: 2 * EXACT(x, tt), EXACT, x_t, t, 2)  # g = 2 g*
    assert doubled["relative_error"] == pytest.approx(1.0, rel=1e-5) and doubled["cosine"] == pytest.approx(1.0)
    flipped = classifier_metrics.gradient_error(lambda x, tt: -EXACT(x, tt), EXACT, x_t, t, 2)  # g = -g*
    assert flipped["relative_error"] == pytest.approx(4.0, rel=1e-5) and flipped["cosine"] == pytest.approx(-1.0)


def test_noised_samples_follow_the_noised_mixture_and_check_t():
    x_t, t, y = classifier_metrics.noised_samples(MIX, S, 999, 4000, torch.Generator().manual_seed(4))
    assert x_t.shape == (4000, 2) and t.dtype == torch.long and (t == 999).all() and y.shape == (4000,)
    assert abs(x_t.std().item() - 1.0) < 0.05  # alpha_bar_999 ~ 0: x_t is standard normal
    x_2, _, y_2 = classifier_metrics.noised_samples(MIX, S, 0, 500, torch.Generator().manual_seed(4), y=2)
    assert (y_2 == 2).all() and (MIX.posterior(x_2)[:, 2] > 0.5).float().mean() > 0.9
    for bad in (-1, 1000, 2.5, True):
        with pytest.raises(ValueError, match="t must"):
            classifier_metrics.noised_samples(MIX, S, bad, 10)


def test_label_and_shape_checks():
    x_t, t, y = classifier_metrics.noised_samples(MIX, S, 10, 20)
    with pytest.raises(ValueError, match="y must"):
        classifier_metrics.accuracy(EXACT, x_t, t, y[:5])
    with pytest.raises(ValueError, match="y must lie in 0..2"):
        classifier_metrics.accuracy(EXACT, x_t, t, y + 3)
    with pytest.raises(ValueError, match="t must"):
        classifier_metrics.cross_entropy(EXACT, x_t, t.float(), y)


def test_step_cost():
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(5))
    cost = classifier_metrics.guided_step_cost(MIX.eps_fn(S), EXACT, 1, S, x, 500, repeats=5)
    assert set(cost) == {"unguided", "classifier_forward", "classifier_gradient", "guided", "ratio"}
    assert cost["ratio"] == pytest.approx(cost["guided"] / cost["unguided"]) and cost["ratio"] > 1
    with pytest.raises(ValueError, match="t must"):
        classifier_metrics.guided_step_cost(MIX.eps_fn(S), EXACT, 1, S, x, 1000)


def test_step_cost_times_named_comparisons_in_the_same_rounds():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(8))
    calls = []
    cost = classifier_metrics.guided_step_cost(MIX.eps_fn(S), EXACT, 1, S, x, 500, repeats=4,
                               compare={"cfg": lambda xx, tt: calls.append(tt) or MIX.eps_fn(S, 1)(xx, tt)})
    assert {"cfg", "ratio", "guided"} <= set(cost) and cost["cfg"] >= 0
    assert len(calls) == 4 + 3 and all((tt == 500).all() for tt in calls)  # 3 warm-up rounds, then 4 timed
    for clash in ("guided", "ratio"):
        with pytest.raises(ValueError, match="compare must not reuse"):
            classifier_metrics.guided_step_cost(MIX.eps_fn(S), EXACT, 1, S, x, 500, repeats=1, compare={clash: MIX.eps_fn(S)})


def _tiny_image_classifier():
    torch.manual_seed(0)
    return NoisyImageClassifier(num_classes=10, T=1000, base_channels=8, emb_dim=8).eval()


def test_data_metrics_vs_t_matches_noisy_accuracy_and_ignores_chunking():
    model = _tiny_image_classifier()
    g = torch.Generator().manual_seed(9)
    x0, y = torch.rand(30, 1, 28, 28, generator=g) * 2 - 1, torch.randint(10, (30,), generator=g)
    ts = [0, 250, 999]
    out = classifier_metrics.data_metrics_vs_t({"net": guidance.classifier_log_prob_fn(model)}, x0, y, S, ts, seed=3)
    # the same noise, drawn in the same order, as noisy_accuracy
    assert out["net"]["accuracy"] == list(classifier_metrics.noisy_accuracy(model, x0, y, S, ts=tuple(ts), seed=3).values())
    chunked = classifier_metrics.data_metrics_vs_t({"net": guidance.classifier_log_prob_fn(model)}, x0, y, S, ts, seed=3, batch_size=7)
    assert chunked["net"]["accuracy"] == out["net"]["accuracy"]
    assert chunked["net"]["cross_entropy"] == pytest.approx(out["net"]["cross_entropy"], rel=1e-6)


def test_data_metrics_vs_t_closed_forms_on_the_mixture():
    x0, y = MIX.sample(3000, generator=torch.Generator().manual_seed(10))
    out = classifier_metrics.data_metrics_vs_t({"uniform": uniform, "exact": EXACT}, x0, y, S, [0, 999], seed=1)
    assert out["uniform"]["cross_entropy"] == pytest.approx([math.log(3)] * 2, abs=1e-6)
    acc = out["exact"]["accuracy"]
    # at t = 0 the exact posterior is the Bayes classifier of clean points; at t = 999 only the largest class is left
    bayes = (MIX.posterior(x0).argmax(1) == y).double().mean().item()
    assert acc[0] == pytest.approx(bayes, abs=0.005) and abs(acc[1] - MIX.weights.max().item()) < 0.04
    with pytest.raises(ValueError, match="y must be a long tensor"):
        classifier_metrics.data_metrics_vs_t({"exact": EXACT}, x0, y[:-1], S, [0])
    with pytest.raises(ValueError, match=r"ts\[0\] must be an integer in 0..999"):
        classifier_metrics.data_metrics_vs_t({"exact": EXACT}, x0, y, S, [1000])
    with pytest.raises(ValueError, match="log_prob_fns"):
        classifier_metrics.data_metrics_vs_t({}, x0, y, S, [0])


def test_label_gradients_of_a_linear_softmax_classifier():
    # log p(k | x) = log_softmax(W x + b)_k has the gradient W_k - sum_j p(j | x) W_j
    g = torch.Generator().manual_seed(11)
    W, b = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)

    def linear(x, t):
        return torch.log_softmax(x.flatten(1) @ W.T + b, dim=1)

    x = torch.randn(1, 2, 3, generator=g, dtype=torch.float64)
    grads, probs = classifier_metrics.label_gradients(linear, x, 17)
    p = torch.softmax(x.flatten() @ W.T + b, dim=0)
    torch.testing.assert_close(probs, p)
    torch.testing.assert_close(grads.reshape(4, 6), W - p @ W)
    assert grads.shape == (4, 2, 3)
    torch.testing.assert_close((probs[:, None, None] * grads).sum(0), torch.zeros(2, 3, dtype=torch.float64))


def test_label_gradients_of_an_image_classifier_and_checks():
    log_prob = guidance.classifier_log_prob_fn(_tiny_image_classifier())
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(12)) * 2 - 1
    grads, probs = classifier_metrics.label_gradients(log_prob, x, 400)
    assert grads.shape == (10, 1, 28, 28) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    for k in (0, 7):  # each row is the gradient guidance would use for that label
        torch.testing.assert_close(grads[k:k + 1], guidance.classifier_log_prob_grad(log_prob, x, torch.tensor([400]), k))
    weighted = (probs[:, None, None, None] * grads).sum(0)
    assert weighted.abs().max() < 1e-4 * grads.abs().max()
    with pytest.raises(ValueError, match="x must be one input"):
        classifier_metrics.label_gradients(log_prob, x.repeat(2, 1, 1, 1), 400)
    with pytest.raises(ValueError, match="t must"):
        classifier_metrics.label_gradients(log_prob, x, -1)
