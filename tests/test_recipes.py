"""The recipes: every network trains from its recipe with plain-data meta, train_all writes the
three MNIST files, load_or_train returns the shipped network or one trained here."""

import pytest
import torch

from course_lib import data, pretrained, recipes
from course_lib.unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier


def test_recipes_run_and_give_plain_meta():
    x = torch.rand(30, 1, 28, 28) * 2 - 1
    y = torch.arange(30) % 10
    recipe = recipes.DigitsRecipe(steps=2, batch_size=8, classifier_steps=2, judge_steps=2, base_channels=8, emb_dim=8)
    for train_fn, cls in ((recipes.train_mnist_cfg, ConditionalUNet), (recipes.train_mnist_classifier,
                                                                         NoisyImageClassifier),
                          (recipes.train_judge, ImageClassifier)):
        net, meta, history = train_fn(x, y, recipe, progress=False)
        assert isinstance(net, cls) and not net.training and len(history.losses) == 2
        pretrained._check_plain(meta)
        cls(**meta["arch"]).load_state_dict(net.state_dict())
        for key in ("command", "seed", "steps", "seconds", "threads", "data_source", "schedule", "config", "device"):
            assert key in meta, key


def test_digits_recipe_checks_its_fields_and_has_quick_and_weak_variants():
    with pytest.raises(ValueError, match="p_uncond"):
        recipes.DigitsRecipe(p_uncond=1.5)
    with pytest.raises(ValueError, match="steps must"):
        recipes.DigitsRecipe(steps=0)
    quick, weak = recipes.DigitsRecipe.quick(), recipes.DigitsRecipe.weak(seed=2)
    assert quick.steps < recipes.DigitsRecipe().steps and quick.base_channels == recipes.DigitsRecipe().base_channels
    assert weak.base_channels == 16 and weak.steps == 750 and weak.ema_decay == 0.99 and weak.seed == 2


def test_device_is_checked_before_any_training():
    x, y = torch.rand(10, 1, 28, 28) * 2 - 1, torch.arange(10)
    with pytest.raises(ValueError, match="device must be"):
        recipes.train_mnist_cfg(x, y, device="abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            recipes.train_judge(x, y, device="cuda")


def test_train_all_writes_three_loadable_files(tmp_path):
    recipe = recipes.DigitsRecipe(steps=2, batch_size=8, classifier_steps=2, judge_steps=2, base_channels=8, emb_dim=8)
    lines = []
    paths = recipes.train_all(recipe, root=tmp_path, command="python -m course_lib.recipes mnist --out X",
                             progress=False, say=lines.append, eval_per_class=1, eval_steps=2)
    assert [p.name for p in paths] == ["mnist_judge.pt", "mnist_cfg.pt", "mnist_classifier.pt"] and len(lines) == 3
    manifest = pretrained.read_manifest(tmp_path)
    for name in ("mnist_judge", "mnist_cfg", "mnist_classifier"):
        loaded = pretrained.load(name, root=tmp_path)
        assert loaded.num_classes == 10 and loaded.schedule.T == 1000
        assert loaded.meta["command"] == manifest[f"{name}.pt"]["command"] == "python -m course_lib.recipes mnist --out X"
    assert set(pretrained.load("mnist_cfg", root=tmp_path).meta["judged_accuracy"]["by_w"]) == {"0", "1", "3"}


def test_load_or_train_loads_the_shipped_network():
    shipped, loaded = recipes.load_or_train("toy_cfg"), pretrained.load("toy_cfg")
    assert shipped.path == loaded.path and shipped.history is None
    assert all(torch.equal(a, b) for a, b in zip(shipped.model.state_dict().values(),
                                                 loaded.model.state_dict().values()))
    with pytest.raises(ValueError, match="name must be one of"):
        recipes.load_or_train("toy_gan")
    with pytest.raises(ValueError, match="threads"):
        recipes.load_or_train("toy_cfg", threads=0)


def test_load_or_train_from_scratch_follows_the_recipe(monkeypatch):
    monkeypatch.setattr(recipes, "TOY_CFG", recipes.ToyCFGConfig(width=16, depth=1, steps=5, batch_size=32))
    threads = torch.get_num_threads()
    p = recipes.load_or_train("toy_cfg", from_scratch=True, progress=False, threads=2)
    assert torch.get_num_threads() == threads
    assert p.path is None and len(p.history.losses) == 5 and p.meta["threads"] == 2
    assert p.meta["config"]["width"] == 16 and p.meta["command"] == "python -m course_lib.recipes toy"
    assert torch.equal(p.meta["mixture"].means, pretrained.load("toy_cfg").meta["mixture"].means)
    assert p.schedule.T == 1000 and p.num_classes == 3 and not p.model.training
    same = recipes.load_or_train("toy_cfg", from_scratch=True, progress=False)  # the current thread count
    again, _ = recipes.train_toy_cfg(config=recipes.TOY_CFG, seed=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(same.model.state_dict().values(), again.state_dict().values()))


def test_load_or_train_mnist_from_scratch_uses_the_quick_recipe(monkeypatch):
    x, y = data.load_mnist("train")
    monkeypatch.setattr(data, "load_mnist", lambda split="train": (x[:40], y[:40]))
    tiny = recipes.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1,
                                classifier_steps=2, classifier_batch_size=4)
    monkeypatch.setattr(recipes.DigitsRecipe, "quick", classmethod(lambda cls, seed=0: tiny))
    for name, cls in (("mnist_cfg", ConditionalUNet), ("mnist_classifier", NoisyImageClassifier)):
        p = recipes.load_or_train(name, from_scratch=True, device="cpu", progress=False)
        assert isinstance(p.model, cls) and p.meta["steps"] == 2 and p.meta["device"] == "cpu" and p.path is None
        assert p.num_classes == 10 and p.schedule.T == 1000
