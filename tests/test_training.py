"""The training loops: loss goes down, label dropout and paired dropout do what they say,
seeds reproduce, EMA forgets the random start, bad arguments are named."""

import math

import pytest
import torch

from course_lib import toy, training
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
    history = training.train_diffusion(_model(), x0, y, SCHEDULE, steps=150, batch_size=128, lr=3e-3,
                                    progress=False)
    first, last = sum(history.losses[:30]) / 30, sum(history.losses[-30:]) / 30
    assert len(history.losses) == 150 and history.seconds > 0
    assert last < 0.8 * first


def test_classifier_training_beats_chance(data) -> None:
    x0, y = data
    torch.manual_seed(0)
    model = NoisyClassifier2D(3, T=SCHEDULE.T, width=32, depth=1)
    history = training.train_classifier(model, x0, y, SCHEDULE, steps=200, batch_size=256, lr=3e-3, progress=False)
    assert sum(history.accuracies[-20:]) / 20 > 0.6 and not model.training
    assert sum(history.losses[-20:]) < sum(history.losses[:20])


def test_label_dropout_replaces_labels_with_null(data) -> None:
    x0, y = data
    spy = LabelSpy(_model())
    training.train_diffusion(spy, x0, y, SCHEDULE, steps=40, batch_size=250, p_uncond=0.2, progress=False)
    labels = torch.cat([c[2] for c in spy.calls])
    share = (labels == 3).float().mean().item()
    assert 0.15 < share < 0.25 and set(labels.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("p_uncond", [0.2, 0.5])
def test_label_dropout_in_train_diffusion_drops_each_label_at_rate_p_and_keeps_the_rest(p_uncond) -> None:
    """guidance.drop_labels as train_diffusion applies it (Ho & Salimans 2021, Algorithm 1): every
    training label is the null label with probability p_uncond, whatever its class, and otherwise its
    own. Each x0 encodes its label (x0 = ((y + 1) 1e4, 0)), so the spy reads the source label off x_t."""
    y = torch.arange(600) % 3
    x0 = torch.stack([(y + 1).float() * 1e4, torch.zeros(600)], 1)
    spy = LabelSpy(_model())
    training.train_diffusion(spy, x0, y, SCHEDULE, steps=40, batch_size=250, p_uncond=p_uncond, progress=False,
                             generator=torch.Generator().manual_seed(7))
    seen, nulls = torch.zeros(3), torch.zeros(3)
    for x_t, t, labels in spy.calls:
        source = (x_t[:, 0] / (1e4 * SCHEDULE.alpha_bars[t].sqrt().float())).round().long() - 1
        kept = labels != 3
        assert torch.equal(labels[kept], source[kept])
        seen += torch.bincount(source, minlength=3)
        nulls += torch.bincount(source[~kept], minlength=3)
    share = nulls / seen                                                  # about 3,333 labels per class
    assert (share - p_uncond).abs().max() < 4 * math.sqrt(p_uncond * (1 - p_uncond) / seen.min())
    # fresh draws every step: the null positions of two batches differ
    assert not torch.equal(spy.calls[0][2] == 3, spy.calls[1][2] == 3)


def test_p_uncond_one_trains_only_the_null_row(data) -> None:
    x0, y = data
    model = _model()
    before = model.label.weight.detach().clone()
    training.train_diffusion(model, x0, y, SCHEDULE, steps=20, batch_size=64, p_uncond=1.0, progress=False)
    after = model.label.weight.detach()
    assert torch.equal(after[:3], before[:3])       # no class row ever saw a gradient
    assert not torch.allclose(after[3], before[3])  # the null row did


def test_p_uncond_zero_never_uses_the_null_row(data) -> None:
    x0, y = data
    model = _model()
    before = model.label.weight.detach().clone()
    training.train_diffusion(model, x0, y, SCHEDULE, steps=20, batch_size=64, p_uncond=0.0, progress=False)
    assert torch.equal(model.label.weight.detach()[3], before[3])


def test_paired_dropout_copies_conditional_examples(data) -> None:
    x0, y = data
    spy = LabelSpy(_model())
    training.train_diffusion(spy, x0, y, SCHEDULE, steps=5, batch_size=100, p_uncond=0.2, paired_dropout=True,
                          progress=False)
    for x_t, t, labels in spy.calls:
        assert (labels[:80] < 3).all() and (labels[80:] == 3).all()  # exactly round(0.2 * 100) null labels
        assert torch.equal(x_t[80:], x_t[:20]) and torch.equal(t[80:], t[:20])  # same x0, t and noise
    # p_uncond = 1 still means "only the null label", paired or not
    model = _model()
    before = model.label.weight.detach().clone()
    training.train_diffusion(model, x0, y, SCHEDULE, steps=10, batch_size=64, p_uncond=1.0, paired_dropout=True,
                          progress=False)
    assert torch.equal(model.label.weight.detach()[:3], before[:3])


def test_unconditional_training_uses_only_the_null_label(data) -> None:
    x0, _ = data
    spy = LabelSpy(_model())
    training.train_diffusion(spy, x0, None, SCHEDULE, steps=3, batch_size=32, progress=False)
    assert all((c[2] == 3).all() for c in spy.calls)


@pytest.mark.parametrize("ema_decay", [None, 0.99])
def test_same_seed_same_weights(data, ema_decay) -> None:
    x0, y = data
    runs = []
    for _ in range(2):
        model = _model(seed=1)
        training.train_diffusion(model, x0, y, SCHEDULE, steps=30, batch_size=64, ema_decay=ema_decay,
                              paired_dropout=True, generator=torch.Generator().manual_seed(5), progress=False)
        runs.append(_state(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = _model(seed=1)
    training.train_diffusion(other, x0, y, SCHEDULE, steps=30, batch_size=64, ema_decay=ema_decay,
                          paired_dropout=True, generator=torch.Generator().manual_seed(6), progress=False)
    assert not all(torch.equal(runs[0][k], v) for k, v in other.state_dict().items())


def test_ema_forgets_the_initial_weights_in_short_runs(data) -> None:
    # with the warm-up, 60 steps at decay 0.999 end near the trained weights, not the random start
    x0, y = data
    model, plain = _model(seed=2), _model(seed=2)
    start = _state(model)
    kwargs = dict(steps=60, batch_size=64, generator=torch.Generator().manual_seed(0), progress=False)
    training.train_diffusion(model, x0, y, SCHEDULE, ema_decay=0.999, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(0)
    training.train_diffusion(plain, x0, y, SCHEDULE, **kwargs)
    w = "blocks.0.inner.weight"
    moved, ema_moved = (plain.state_dict()[w] - start[w]).norm(), (model.state_dict()[w] - start[w]).norm()
    assert ema_moved > 0.5 * moved


def test_schedule_of_another_length_raises(data) -> None:
    x0, y = data
    with pytest.raises(ValueError, match="T=1000"):
        training.train_diffusion(_model(), x0, y, make_schedule("linear", 1000), steps=1, progress=False)
    torch.manual_seed(0)
    clf = NoisyClassifier2D(3, T=100, width=8, depth=1)
    with pytest.raises(ValueError, match="T=50"):
        training.train_classifier(clf, x0, y, make_schedule("linear", 50), steps=1, progress=False)


@pytest.mark.parametrize("kwargs", [dict(p_uncond=1.5), dict(steps=0), dict(batch_size=-1), dict(lr=float("nan")),
                                    dict(ema_decay=1.0)])
def test_bad_arguments_raise(data, kwargs) -> None:
    x0, y = data
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        training.train_diffusion(_model(), x0, y, SCHEDULE, progress=False, **{"steps": 1, **kwargs})


def test_bad_data_raise(data) -> None:
    x0, y = data
    with pytest.raises(ValueError, match="y"):
        training.train_diffusion(_model(), x0, y[:-1], SCHEDULE, steps=1, progress=False)
    with pytest.raises(ValueError, match="labels"):
        training.train_classifier(NoisyClassifier2D(3, T=100), x0, None, SCHEDULE, steps=1, progress=False)


def test_ema_is_a_public_lerp_of_the_parameters(data) -> None:
    """The EMA uses Tensor.lerp_ per parameter; with decay d and warm-up it ends at
    ema_T = lerp(ema_{T-1}, theta_T, 1 - min(d, (1 + step) / (10 + step))), checked by replaying it."""
    x0, y = data
    model, replay = _model(seed=3), _model(seed=3)
    start = _state(model)
    training.train_diffusion(model, x0, y, SCHEDULE, steps=5, batch_size=32, ema_decay=0.5, progress=False,
                             generator=torch.Generator().manual_seed(0))
    history = []
    ema = {k: v.clone() for k, v in start.items()}

    class Spy(torch.nn.Module):  # record the raw weights after every optimiser step
        def __init__(self, inner):
            super().__init__()
            self.inner, self.num_classes, self.T = inner, inner.num_classes, inner.T

        def forward(self, x, t, yy):
            history.append({k: v.detach().clone() for k, v in self.inner.state_dict().items()})
            return self.inner(x, t, yy)

    training.train_diffusion(Spy(replay), x0, y, SCHEDULE, steps=5, batch_size=32, progress=False,
                             generator=torch.Generator().manual_seed(0))
    final = _state(replay)
    raws = history[1:] + [final]  # the weights after each step
    for step, raw in enumerate(raws):
        weight = 1 - min(0.5, (1 + step) / (10 + step))
        ema = {k: ema[k].lerp(raw[k], weight) for k in ema}
    assert all(torch.equal(ema[k], v) for k, v in model.state_dict().items())


def test_random_shift_moves_digits_within_bounds():
    x = torch.full((50, 1, 28, 28), -1.0)
    x[:, 0, 14, 14] = 1.0
    shifted = training.random_shift(x, 2, torch.Generator().manual_seed(0))
    where = (shifted[:, 0] == 1).nonzero()[:, 1:]
    assert shifted.shape == x.shape and len(where) == 50
    assert (where - 14).abs().max() == 2 and len({tuple(p) for p in where.tolist()}) > 10
    assert training.random_shift(x, 0, torch.Generator()) is x


def test_image_classifier_training_runs_and_checks_arguments():
    from course_lib.unet import ImageClassifier

    x, y = torch.rand(20, 1, 28, 28) * 2 - 1, torch.arange(20) % 10
    model = training.seeded_init(0, lambda: ImageClassifier(feature_dim=8))
    history = training.train_image_classifier(model, x, y, steps=3, batch_size=4, lr=1e-3, max_shift=1,
                                              progress=False)
    assert len(history.losses) == len(history.accuracies) == 3 and not model.training
    with pytest.raises(ValueError, match="max_shift"):
        training.train_image_classifier(model, x, y, steps=1, batch_size=4, lr=1e-3, max_shift=-1, progress=False)


def test_seeded_init_is_reproducible_and_leaves_the_global_rng():
    state = torch.random.get_rng_state()
    a = training.seeded_init(4, lambda: torch.nn.Linear(3, 3))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = training.seeded_init(4, lambda: torch.nn.Linear(3, 3))
    assert torch.equal(a.weight, b.weight)
