"""The MNIST track: digit grids wired to the samplers, metrics wired to the judge, bad inputs,
and the shipped weights' quality."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import diffusion, digits, guidance, metrics, plots, pretrained, toy  # noqa: E402
from course_lib.unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier  # noqa: E402

S = diffusion.make_schedule("linear", 1000)


@pytest.fixture(scope="module")
def tiny():
    """Small random networks: fast, and their outputs depend on x, t and y."""
    torch.manual_seed(0)
    model = ConditionalUNet(base_channels=8, emb_dim=8).eval()
    classifier = NoisyImageClassifier(base_channels=8, emb_dim=8).eval()
    judge = ImageClassifier(feature_dim=16).eval()
    return model, classifier, judge


def test_grid_labels_and_noise():
    assert digits.grid_labels(3).tolist() == list(range(10)) * 3
    x_T = digits.grid_noise(2, seed=5)
    assert x_T.shape == (20, 1, 28, 28)
    torch.testing.assert_close(x_T, digits.grid_noise(2, seed=5))
    assert not torch.equal(x_T, digits.grid_noise(2, seed=6))


def test_cfg_grid_is_the_public_sampler_on_the_same_noise(tiny):
    model = tiny[0]
    x_T = digits.grid_noise(2, seed=1)
    x_T[1] = x_T[0]  # digits 0 and 1 start from the same noise
    images = digits.cfg_grid(model, 2.0, x_T, steps=3, schedule=S)
    assert images.shape == (20, 1, 28, 28) and images.abs().max() <= 1.0
    direct = diffusion.sample(guidance.model_cfg_eps_fn(model, digits.grid_labels(2), 2.0, 10), (20, 1, 28, 28), S,
                              steps=3, eta=0.0, x_T=x_T).clamp(-1, 1)
    torch.testing.assert_close(images, direct)
    torch.testing.assert_close(digits.cfg_grid(model, 2.0, x_T, steps=3), images)  # default schedule: linear, T
    # w = -1 ignores the label, so equal noise gives equal digits; at w = 0 the label matters
    uncond = digits.cfg_grid(model, -1.0, x_T, steps=3, schedule=S)
    torch.testing.assert_close(uncond[0], uncond[1])
    cond = digits.cfg_grid(model, 0.0, x_T, steps=3, schedule=S)
    assert (cond[0] - cond[1]).abs().max() > 1e-4
    assert (cond - images).abs().max() > 1e-4  # the weight changes the picture from the same noise


def test_classifier_grid_at_gamma_zero_is_unconditional(tiny):
    model, classifier, _ = tiny
    x_T = digits.grid_noise(1, seed=2)
    plain = digits.classifier_grid(model, classifier, 0.0, x_T, steps=3, schedule=S)
    torch.testing.assert_close(plain, digits.cfg_grid(model, -1.0, x_T, steps=3, schedule=S), atol=1e-3, rtol=0)
    steered = digits.classifier_grid(model, classifier, 5.0, x_T, steps=3, schedule=S)
    assert steered.shape == (10, 1, 28, 28) and (steered - plain).abs().max() > 1e-4


def test_metrics_are_wired_to_the_library(tiny):
    judge = tiny[2]
    images = torch.rand(20, 1, 28, 28) * 2 - 1
    labels = digits.grid_labels(2)
    predicted = judge(images).argmax(1)
    assert digits.judged_accuracy(judge, images, predicted) == 1.0
    assert digits.judged_accuracy(judge, images, (predicted + 1) % 10) == 0.0
    expected = np.mean([metrics.mean_pairwise_distance(images[labels == k]) for k in range(10)])
    assert digits.within_class_diversity(images, labels) == pytest.approx(expected)
    feats = digits.judge_features(judge, images)
    assert feats.shape == (20, 16)
    assert digits.feature_frechet(judge, images, images) == pytest.approx(0.0, abs=1e-6)
    other = torch.rand(30, 1, 28, 28) * 2 - 1
    by_images = digits.feature_frechet(judge, images, other)
    assert by_images == pytest.approx(digits.feature_frechet(judge, images, digits.judge_features(judge, other)))
    with torch.no_grad():
        assert by_images == pytest.approx(metrics.frechet_distance(feats, judge.features(other)))


def test_sweep_rows_hold_both_conventions(tiny):
    model, classifier, judge = tiny
    reference = torch.rand(40, 1, 28, 28) * 2 - 1
    rows = digits.sweep(model, judge, reference, ws=(0.0, 2.0), gammas=(1.0,), classifier=classifier, m=2, steps=2)
    assert [(r["guidance"], r["w"], r["gamma"]) for r in rows] == [("cfg", 0.0, 1.0), ("cfg", 2.0, 3.0),
                                                                  ("classifier", 0.0, 1.0)]
    x_T, labels = digits.grid_noise(2, 0), digits.grid_labels(2)
    images = digits.cfg_grid(model, 2.0, x_T, 2, schedule=S)
    assert rows[1]["accuracy"] == digits.judged_accuracy(judge, images, labels)
    assert rows[1]["diversity"] == pytest.approx(digits.within_class_diversity(images, labels))
    assert rows[1]["frechet"] == pytest.approx(digits.feature_frechet(judge, images, reference))
    assert "accuracy" in digits.format_rows(rows)
    table = digits.format_rows([{"w": float("nan"), "accuracy": 0.5}, {"w": 1.0, "accuracy": 0.25}])
    assert table.splitlines()[1].split() == ["-", "0.500"] and table.splitlines()[2].split() == ["1.000", "0.250"]
    with pytest.raises(ValueError, match="classifier must be given"):
        digits.sweep(model, judge, reference, ws=(), gammas=(1.0,))


def test_sweep_2d_with_perfect_models_matches_exact_and_cfg_is_classifier_guidance():
    mix = toy.anisotropic()
    oracle, oracle_clf = toy.OracleDenoiser(mix, S), toy.OracleClassifier(mix, S)
    rows = digits.sweep_2d(mix, S, 1, model=oracle, classifier=oracle_clf, ws=(0.0, 2.0), gammas=(3.0,), n=200,
                           steps=10)
    exact, learned = digits.rows_where(rows, model="exact"), digits.rows_where(rows, model="learned")
    for a, b in zip(exact, learned):
        for key in ("precision", "recall", "diversity", "sw", "posterior"):
            assert a[key] == pytest.approx(b[key], abs=2e-3), key
    # CFG at w = 2 with exact scores is classifier guidance with the exact posterior at gamma = 3
    cfg2, cg3 = digits.rows_where(exact, guidance="cfg", w=2.0)[0], digits.rows_where(exact, gamma=3.0,
                                                                                     guidance="classifier")[0]
    assert cfg2["sw"] == pytest.approx(cg3["sw"], abs=1e-3)
    assert cfg2["posterior"] > digits.rows_where(exact, w=0.0)[0]["posterior"]
    assert cfg2["diversity"] < digits.rows_where(exact, w=0.0)[0]["diversity"]


def test_tile_matches_image_grid():
    images = torch.rand(13, 1, 28, 28) * 2 - 1
    ax = plots.image_grid(images, nrow=10)
    np.testing.assert_allclose(plots.tile_images(images, 10), ax.images[0].get_array())
    plt.close(ax.figure)


def test_bad_inputs_raise_value_error(tiny):
    model, classifier, judge = tiny
    x_T = digits.grid_noise(1)
    with pytest.raises(ValueError, match="x_T must be"):
        digits.cfg_grid(model, 1.0, torch.randn(15, 1, 28, 28))
    with pytest.raises(ValueError, match="w must"):
        digits.cfg_grid(model, float("nan"), x_T)
    with pytest.raises(ValueError, match="w must"):
        digits.cfg_grid(model, -2.0, x_T)
    with pytest.raises(ValueError, match="steps must"):
        digits.cfg_grid(model, 1.0, x_T, steps=0)
    with pytest.raises(ValueError, match="gamma must"):
        digits.classifier_grid(model, classifier, -0.5, x_T)
    with pytest.raises(ValueError, match="T=100"):
        digits.cfg_grid(model, 1.0, x_T, schedule=diffusion.make_schedule("linear", 100))
    with pytest.raises(ValueError, match="m must"):
        digits.grid_labels(0)
    with pytest.raises(ValueError, match="seed must"):
        digits.grid_noise(1, seed=-1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        digits.within_class_diversity(torch.zeros(3, 1, 28, 28), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="y must lie in 0..9"):
        digits.judged_accuracy(judge, torch.zeros(2, 1, 28, 28), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="images must be"):
        digits.judged_accuracy(judge, torch.zeros(2, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="p_uncond"):
        digits.DigitsRecipe(p_uncond=1.5)
    with pytest.raises(ValueError, match="steps must"):
        digits.DigitsRecipe(steps=0)


def test_random_shift_moves_digits_within_bounds():
    x = torch.full((50, 1, 28, 28), -1.0)
    x[:, 0, 14, 14] = 1.0
    shifted = digits.random_shift(x, 2, torch.Generator().manual_seed(0))
    where = (shifted[:, 0] == 1).nonzero()[:, 1:]
    assert shifted.shape == x.shape and len(where) == 50
    assert (where - 14).abs().max() == 2 and len({tuple(p) for p in where.tolist()}) > 10


def test_recipes_run_and_give_plain_meta():
    x = torch.rand(30, 1, 28, 28) * 2 - 1
    y = torch.arange(30) % 10
    recipe = digits.DigitsRecipe(steps=2, batch_size=8, classifier_steps=2, judge_steps=2, base_channels=8, emb_dim=8)
    for train_fn, cls in ((digits.train_mnist_cfg, ConditionalUNet), (digits.train_mnist_classifier,
                                                                        NoisyImageClassifier),
                          (digits.train_judge, ImageClassifier)):
        net, meta = train_fn(x, y, recipe, progress=False)
        assert isinstance(net, cls) and not net.training
        pretrained._check_plain(meta)
        cls(**meta["arch"]).load_state_dict(net.state_dict())
        for key in ("command", "seed", "steps", "seconds", "threads", "data_source", "schedule"):
            assert key in meta, key


def test_shipped_mnist_cfg_draws_the_digits_it_is_asked_for():
    """Cheap but telling: 100 digits at w = 3, 20 DDIM steps, through the public API,
    judged by the independent clean classifier. A broken model sits near chance (0.1)."""
    cfg, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge")
    labels = digits.grid_labels(10)
    x_T = digits.grid_noise(10, seed=123)
    eps_fn = guidance.model_cfg_eps_fn(cfg.model, labels, 3.0, cfg.num_classes)
    images = diffusion.sample(eps_fn, (100, 1, 28, 28), cfg.schedule, steps=20, eta=0.0, x_T=x_T).clamp(-1, 1)
    accuracy = digits.judged_accuracy(judge.model, images, labels)
    assert accuracy >= 0.85, accuracy
    unguided = digits.cfg_grid(cfg.model, -1.0, x_T, 20, schedule=cfg.schedule)
    assert digits.judged_accuracy(judge.model, unguided, labels) < 0.5  # labels are not decoration


def test_train_all_writes_three_loadable_files(tmp_path):
    recipe = digits.DigitsRecipe(steps=2, batch_size=8, classifier_steps=2, judge_steps=2, base_channels=8, emb_dim=8)
    lines = []
    paths = digits.train_all(recipe, root=tmp_path, command="python -m course_lib.train mnist --out X",
                             progress=False, say=lines.append, eval_per_class=1, eval_steps=2)
    assert [p.name for p in paths] == ["mnist_judge.pt", "mnist_cfg.pt", "mnist_classifier.pt"] and len(lines) == 3
    manifest = pretrained.read_manifest(tmp_path)
    for name in ("mnist_judge", "mnist_cfg", "mnist_classifier"):
        loaded = pretrained.load(name, root=tmp_path)
        assert loaded.num_classes == 10 and loaded.schedule.T == 1000
        assert loaded.meta["command"] == manifest[f"{name}.pt"]["command"] == "python -m course_lib.train mnist --out X"
    assert set(pretrained.load("mnist_cfg", root=tmp_path).meta["judged_accuracy"]["by_w"]) == {"0", "1", "3"}


def test_judge_cfg_model_grades_the_same_noise_at_every_w(tiny):
    model, _, judge = tiny
    by_w = digits.judge_cfg_model(model, judge, ws=(-1.0, 2.0), per_class=1, steps=2, seed=4)
    assert list(by_w) == ["-1", "2"]
    x_T, labels = digits.grid_noise(1, seed=4), digits.grid_labels(1)
    assert by_w["2"] == digits.judged_accuracy(judge, digits.cfg_grid(model, 2.0, x_T, 2), labels)


def test_from_scratch_rows_train_and_grade(monkeypatch):
    recipe = digits.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1)
    small = digits.load_digits("train")[0][:40], digits.load_digits("train")[1][:40]
    monkeypatch.setattr(digits, "load_digits", lambda split="train": small)
    monkeypatch.setattr(digits, "judge_cfg_model", lambda model, judge, schedule, seed: {"0": 0.25, "3": 0.5})
    rows = list(digits.from_scratch_rows(recipe, threads=1))
    assert rows[0].section == "mnist-train (1 thread(s))" and "2 steps" in rows[0].quantity and rows[0].value >= 0
    assert [(r.quantity.split(" (")[0], r.value, r.note) for r in rows[1:]] == [
        ("judged accuracy at w=0", 0.25, ""), ("judged accuracy at w=3", 0.5, "target >= 0.90")]


def test_device_is_checked_before_any_training():
    with pytest.raises(ValueError, match="device must be"):
        digits._device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            digits._device("cuda")
    assert digits._device("cpu") == torch.device("cpu")


def test_train_command_writes_all_three_models_with_their_device(monkeypatch, tmp_path, capsys):
    from course_lib import train

    x, y = digits.load_digits("train")
    small = x[:40], y[:40]
    tiny = digits.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1,
                               classifier_steps=2, classifier_batch_size=4, judge_steps=2, judge_batch_size=4)
    monkeypatch.setattr(digits, "load_digits", lambda split="train": small)
    monkeypatch.setattr(digits, "DigitsRecipe", lambda seed: tiny)
    monkeypatch.setattr(digits, "noisy_accuracy", lambda *args, **kwargs: {"0": 0.5})
    monkeypatch.setattr(digits, "judge_cfg_model", lambda *args, **kwargs: {"0": 0.1, "1": 0.2, "3": 0.3})
    train.main(["mnist", "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "training on cpu" in out
    for name in ("mnist_judge", "mnist_cfg", "mnist_classifier"):
        p = pretrained.load(name, root=tmp_path)
        assert p.meta["device"] == "cpu" and p.meta["command"].startswith("python -m course_lib.train mnist")
        assert all(q.device.type == "cpu" for q in p.model.parameters())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train.main(["mnist", "--out", str(tmp_path), "--device", "cuda", "--quiet"])
