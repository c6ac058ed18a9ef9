import json

import pytest
import torch

from course_lib import pretrained, toy, train
from course_lib.diffusion import make_schedule
from course_lib.models import ConditionalMLP, NoisyClassifier2D

SCHEDULE = make_schedule("linear", 100)


@pytest.fixture(scope="module")
def data():
    return toy.anisotropic().sample(4000, generator=torch.Generator().manual_seed(0))


def _model(seed: int = 0, width: int = 32, depth: int = 1) -> ConditionalMLP:
    torch.manual_seed(seed)
    return ConditionalMLP(3, T=SCHEDULE.T, width=width, depth=depth)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


class LabelSpy(torch.nn.Module):
    """Wraps a model and records the labels and inputs of every training batch."""

    def __init__(self, model: ConditionalMLP) -> None:
        super().__init__()
        self.model, self.num_classes, self.T, self.calls = model, model.num_classes, model.T, []

    def forward(self, x, t, y):
        self.calls.append((x.detach().clone(), t.clone(), y.clone()))
        return self.model(x, t, y)


def test_short_training_reduces_the_loss(data) -> None:
    x0, y = data
    history = train.train_diffusion(_model(), x0, y, SCHEDULE, steps=150, batch_size=128, lr=3e-3,
                                    progress=False)
    first, last = sum(history.losses[:30]) / 30, sum(history.losses[-30:]) / 30
    assert len(history.losses) == 150 and history.seconds > 0
    assert last < 0.8 * first


def test_classifier_training_beats_chance(data) -> None:
    x0, y = data
    torch.manual_seed(0)
    model = NoisyClassifier2D(3, T=SCHEDULE.T, width=32, depth=1)
    history = train.train_classifier(model, x0, y, SCHEDULE, steps=200, batch_size=256, lr=3e-3, progress=False)
    assert sum(history.accuracies[-20:]) / 20 > 0.6 and not model.training
    assert sum(history.losses[-20:]) < sum(history.losses[:20])


def test_label_dropout_replaces_labels_with_null(data) -> None:
    x0, y = data
    spy = LabelSpy(_model())
    train.train_diffusion(spy, x0, y, SCHEDULE, steps=40, batch_size=250, p_uncond=0.2, progress=False)
    labels = torch.cat([c[2] for c in spy.calls])
    share = (labels == 3).float().mean().item()
    assert 0.15 < share < 0.25 and set(labels.tolist()) == {0, 1, 2, 3}


def test_p_uncond_one_trains_only_the_null_row(data) -> None:
    x0, y = data
    model = _model()
    before = model.label.weight.detach().clone()
    train.train_diffusion(model, x0, y, SCHEDULE, steps=20, batch_size=64, p_uncond=1.0, progress=False)
    after = model.label.weight.detach()
    assert torch.equal(after[:3], before[:3])       # no class row ever saw a gradient
    assert not torch.allclose(after[3], before[3])  # the null row did


def test_p_uncond_zero_never_uses_the_null_row(data) -> None:
    x0, y = data
    model = _model()
    before = model.label.weight.detach().clone()
    train.train_diffusion(model, x0, y, SCHEDULE, steps=20, batch_size=64, p_uncond=0.0, progress=False)
    assert torch.equal(model.label.weight.detach()[3], before[3])


def test_paired_dropout_copies_conditional_examples(data) -> None:
    x0, y = data
    spy = LabelSpy(_model())
    train.train_diffusion(spy, x0, y, SCHEDULE, steps=5, batch_size=100, p_uncond=0.2, paired_dropout=True,
                          progress=False)
    for x_t, t, labels in spy.calls:
        assert (labels[:80] < 3).all() and (labels[80:] == 3).all()  # exactly round(0.2 * 100) null labels
        assert torch.equal(x_t[80:], x_t[:20]) and torch.equal(t[80:], t[:20])  # same x0, t and noise
    # p_uncond = 1 still means "only the null label", paired or not
    model = _model()
    before = model.label.weight.detach().clone()
    train.train_diffusion(model, x0, y, SCHEDULE, steps=10, batch_size=64, p_uncond=1.0, paired_dropout=True,
                          progress=False)
    assert torch.equal(model.label.weight.detach()[:3], before[:3])


def test_unconditional_training_uses_only_the_null_label(data) -> None:
    x0, _ = data
    spy = LabelSpy(_model())
    train.train_diffusion(spy, x0, None, SCHEDULE, steps=3, batch_size=32, progress=False)
    assert all((c[2] == 3).all() for c in spy.calls)


@pytest.mark.parametrize("ema_decay", [None, 0.99])
def test_same_seed_same_weights(data, ema_decay) -> None:
    x0, y = data
    runs = []
    for _ in range(2):
        model = _model(seed=1)
        train.train_diffusion(model, x0, y, SCHEDULE, steps=30, batch_size=64, ema_decay=ema_decay,
                              paired_dropout=True, generator=torch.Generator().manual_seed(5), progress=False)
        runs.append(_state(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = _model(seed=1)
    train.train_diffusion(other, x0, y, SCHEDULE, steps=30, batch_size=64, ema_decay=ema_decay,
                          paired_dropout=True, generator=torch.Generator().manual_seed(6), progress=False)
    assert not all(torch.equal(runs[0][k], v) for k, v in other.state_dict().items())


def test_ema_forgets_the_initial_weights_in_short_runs(data) -> None:
    # with the warm-up, 60 steps at decay 0.999 end near the trained weights, not the random start
    x0, y = data
    model, plain = _model(seed=2), _model(seed=2)
    start = _state(model)
    kwargs = dict(steps=60, batch_size=64, generator=torch.Generator().manual_seed(0), progress=False)
    train.train_diffusion(model, x0, y, SCHEDULE, ema_decay=0.999, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(0)
    train.train_diffusion(plain, x0, y, SCHEDULE, **kwargs)
    w = "blocks.0.inner.weight"
    moved, ema_moved = (plain.state_dict()[w] - start[w]).norm(), (model.state_dict()[w] - start[w]).norm()
    assert ema_moved > 0.5 * moved


def test_schedule_of_another_length_raises(data) -> None:
    x0, y = data
    with pytest.raises(ValueError, match="T=1000"):
        train.train_diffusion(_model(), x0, y, make_schedule("linear", 1000), steps=1, progress=False)
    torch.manual_seed(0)
    clf = NoisyClassifier2D(3, T=100, width=8, depth=1)
    with pytest.raises(ValueError, match="T=50"):
        train.train_classifier(clf, x0, y, make_schedule("linear", 50), steps=1, progress=False)


@pytest.mark.parametrize("kwargs", [dict(p_uncond=1.5), dict(steps=0), dict(batch_size=-1), dict(lr=float("nan")),
                                    dict(ema_decay=1.0)])
def test_bad_arguments_raise(data, kwargs) -> None:
    x0, y = data
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        train.train_diffusion(_model(), x0, y, SCHEDULE, progress=False, **{"steps": 1, **kwargs})


def test_bad_data_raise(data) -> None:
    x0, y = data
    with pytest.raises(ValueError, match="y"):
        train.train_diffusion(_model(), x0, y[:-1], SCHEDULE, steps=1, progress=False)
    with pytest.raises(ValueError, match="labels"):
        train.train_classifier(NoisyClassifier2D(3, T=100), x0, None, SCHEDULE, steps=1, progress=False)


# --- the command line -----------------------------------------------------------------------

def test_cli_lists_recipes(capsys) -> None:
    assert "toy" in train.RECIPES
    with pytest.raises(SystemExit) as exit_:
        train.main(["--help"])
    assert exit_.value.code == 0 and "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train.main(["no-such-recipe"])


def test_cli_toy_writes_loadable_weights_and_manifest(tmp_path, monkeypatch) -> None:
    # the real recipe with tiny budgets: same code path, a few seconds
    monkeypatch.setattr(train, "TOY_CFG", train.ToyCFGConfig(width=16, depth=1, steps=30, batch_size=64))
    monkeypatch.setattr(train, "TOY_CLASSIFIER", train.ToyClassifierConfig(width=16, depth=1, steps=30))
    report = train.toy_cfg_report
    monkeypatch.setattr(train, "toy_cfg_report", lambda *a, **k: report(*a, **{**k, "n": 100, "steps": 5}))
    threads = torch.get_num_threads()
    try:
        assert train.main(["toy", "--out", str(tmp_path), "--quiet", "--seed", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"toy_cfg.pt", "toy_classifier.pt"}
    command = f"python -m course_lib.train toy --out {tmp_path} --quiet --seed 3"
    assert all(entry["command"] == command for entry in manifest.values())
    cfg = pretrained.load("toy_cfg", root=tmp_path)
    assert cfg.meta["seed"] == 3 and cfg.meta["steps"] == 30 and cfg.meta["threads"] == 1
    assert cfg.meta["arch"] == {"num_classes": 3, "T": 1000, "width": 16, "depth": 1}
    assert len(cfg.meta["quality"]) == 6 and cfg.meta["config"]["paired_dropout"] is True
    clf = pretrained.load("toy_classifier", root=tmp_path)
    assert [row["t"] for row in clf.meta["accuracy"]] == [0, 100, 200, 300, 500, 999]
