"""The command line ``python -m course_lib.recipes``: recipes listed, the toy and MNIST commands
write loadable weights with their command and device in the manifest."""

import json

import pytest
import torch

from course_lib import classifier_metrics, data, pretrained, recipes, sample_metrics
from course_lib.recipes import __main__ as command_line


def test_cli_lists_recipes(capsys) -> None:
    assert "toy" in command_line.RECIPES
    with pytest.raises(SystemExit) as exit_:
        command_line.main(["--help"])
    assert exit_.value.code == 0 and "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        command_line.main(["no-such-recipe"])


def test_cli_toy_writes_loadable_weights_and_manifest(tmp_path, monkeypatch) -> None:
    # the real recipe with tiny budgets: same code path, a few seconds
    monkeypatch.setattr(recipes, "TOY_CFG", recipes.ToyCFGConfig(width=16, depth=1, steps=30, batch_size=64))
    monkeypatch.setattr(recipes, "TOY_CLASSIFIER", recipes.ToyClassifierConfig(width=16, depth=1, steps=30))
    report = sample_metrics.toy_cfg_report
    monkeypatch.setattr(sample_metrics, "toy_cfg_report", lambda *a, **k: report(*a, **{**k, "n": 100, "steps": 5}))
    threads = torch.get_num_threads()
    try:
        assert command_line.main(["toy", "--out", str(tmp_path), "--quiet", "--seed", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"toy_cfg.pt", "toy_classifier.pt"}
    command = f"python -m course_lib.recipes toy --out {tmp_path} --quiet --seed 3"
    assert all(entry["command"] == command for entry in manifest.values())
    cfg = pretrained.load("toy_cfg", root=tmp_path)
    assert cfg.meta["seed"] == 3 and cfg.meta["steps"] == 30 and cfg.meta["threads"] == 1
    assert cfg.meta["arch"] == {"num_classes": 3, "T": 1000, "width": 16, "depth": 1}
    assert len(cfg.meta["quality"]) == 6 and cfg.meta["config"]["paired_dropout"] is True
    clf = pretrained.load("toy_classifier", root=tmp_path)
    assert [row["t"] for row in clf.meta["accuracy"]] == [0, 100, 200, 300, 500, 999]


def test_train_command_writes_all_three_models_with_their_device(monkeypatch, tmp_path, capsys):
    x, y = data.load_mnist("train")
    small = x[:40], y[:40]
    tiny = recipes.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1,
                               classifier_steps=2, classifier_batch_size=4, judge_steps=2, judge_batch_size=4)
    monkeypatch.setattr(data, "load_mnist", lambda split="train": small)
    monkeypatch.setattr(recipes, "DigitsRecipe", lambda seed: tiny)
    monkeypatch.setattr(classifier_metrics, "noisy_accuracy", lambda *args, **kwargs: {"0": 0.5})
    monkeypatch.setattr(sample_metrics, "judge_cfg_model", lambda *args, **kwargs: {"0": 0.1, "1": 0.2, "3": 0.3})
    command_line.main(["mnist", "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "training on cpu" in out
    for name in ("mnist_judge", "mnist_cfg", "mnist_classifier"):
        p = pretrained.load(name, root=tmp_path)
        assert p.meta["device"] == "cpu" and p.meta["command"].startswith("python -m course_lib.recipes mnist")
        assert all(q.device.type == "cpu" for q in p.model.parameters())
    if not torch.cuda.is_available():  # one argparse line naming --device (tests/test_messages.py checks its text)
        with pytest.raises(SystemExit) as stop:
            command_line.main(["mnist", "--out", str(tmp_path), "--device", "cuda", "--quiet"])
        assert stop.value.code == 2
        assert "--device: device 'cuda' was asked for, but this torch sees no CUDA GPU" in capsys.readouterr().err


def test_weak_command_writes_the_weak_guide(monkeypatch, tmp_path, capsys):
    x, y = data.load_mnist("train")
    small = x[:40], y[:40]
    tiny = recipes.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1)
    monkeypatch.setattr(data, "load_mnist", lambda split="train": small)
    monkeypatch.setattr(recipes.DigitsRecipe, "weak", classmethod(lambda cls, seed=0: tiny))
    monkeypatch.setattr(sample_metrics, "judge_cfg_model", lambda *args, **kwargs: {"0": 0.1, "1": 0.2, "3": 0.3})
    assert command_line.main(["mnist-weak", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert "mnist_cfg_weak" in capsys.readouterr().out
    weak = pretrained.load("mnist_cfg_weak", root=tmp_path)
    assert weak.meta["command"] == f"python -m course_lib.recipes mnist-weak --out {tmp_path} --device cpu"
    assert weak.meta["arch"]["base_channels"] == 8 and weak.meta["judged_accuracy"]["by_w"]["3"] == 0.3
