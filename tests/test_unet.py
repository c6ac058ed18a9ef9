import pytest
import torch

from course_lib.unet import (
    ConditionalUNet,
    ImageClassifier,
    NoisyImageClassifier,
    timestep_embedding,
)

B = 4


def _inputs(seed: int = 0, batch: int = B) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1
    return x, torch.randint(0, 1000, (batch,), generator=g), torch.randint(0, 10, (batch,), generator=g)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def unet() -> ConditionalUNet:
    torch.manual_seed(0)
    return ConditionalUNet().eval()


def test_timestep_embedding_shape_range_and_clock() -> None:
    t = torch.tensor([0, 1, 500, 999])
    emb = timestep_embedding(t, 32, 1000)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    assert emb.abs().max() <= 1.0
    assert torch.cdist(emb, emb).triu(1)[torch.ones(4, 4).triu(1).bool()].min() > 0.1  # all distinct
    # time is normalised by T: step 250 of 500 is step 500 of 1000
    assert torch.allclose(timestep_embedding(torch.tensor([250]), 32, 500), emb[2:3])
    half_way = timestep_embedding(torch.tensor([0.5]), 8, 1)  # float time works too
    assert torch.allclose(half_way, timestep_embedding(torch.tensor([500]), 8, 1000))
    for dim in (0, 7):
        with pytest.raises(ValueError, match="dim"):
            timestep_embedding(t, dim, 1000)


def test_shapes_and_dtypes(unet: ConditionalUNet) -> None:
    x, t, y = _inputs()
    with torch.no_grad():
        eps = unet(x, t, y)
        assert eps.shape == (B, 1, 28, 28) and eps.dtype == torch.float32 and torch.isfinite(eps).all()
        logits = NoisyImageClassifier()(x, t)
        assert logits.shape == (B, 10) and logits.dtype == torch.float32
        judge = ImageClassifier()
        assert judge(x).shape == (B, 10)
        assert judge.features(x).shape == (B, judge.feature_dim) == (B, 128)
        assert torch.allclose(judge(x), judge.head(judge.features(x)))
    assert unet.null_label == unet.num_classes == 10


def test_parameter_counts_stay_small() -> None:
    """Sized for a laptop CPU: every model stays under 200k parameters."""
    assert 50_000 < _n_params(ConditionalUNet()) < 200_000
    assert _n_params(NoisyImageClassifier()) < 200_000
    assert _n_params(ImageClassifier()) < 200_000


def test_null_label_accepted_and_distinct(unet: ConditionalUNet) -> None:
    x, t, _ = _inputs()
    with torch.no_grad():
        eps_null = unet(x, t, torch.full((B,), unet.null_label))
        for label in (0, 7):
            eps_label = unet(x, t, torch.full((B,), label))
            assert (eps_null - eps_label).abs().mean() > 1e-3


def test_time_and_label_change_the_output(unet: ConditionalUNet) -> None:
    x, t, y = _inputs()
    with torch.no_grad():
        eps = unet(x, t, y)
        assert (unet(x, (t + 100) % 1000, y) - eps).abs().mean() > 1e-3
        assert (unet(x, t, (y + 1) % 10) - eps).abs().mean() > 1e-3
        torch.manual_seed(0)
        clf = NoisyImageClassifier()
        assert (clf(x, (t + 100) % 1000) - clf(x, t)).abs().mean() > 1e-4


@pytest.mark.parametrize(
    "name, change",
    [
        ("x", lambda x, t, y: (x[:, 0], t, y)),
        ("x", lambda x, t, y: (x.expand(B, 3, 28, 28), t, y)),
        ("x", lambda x, t, y: (x[..., :27], t, y)),
        ("x", lambda x, t, y: (x.long(), t, y)),
        ("t", lambda x, t, y: (x, torch.full((B,), 1000), y)),
        ("t", lambda x, t, y: (x, torch.full((B,), -1), y)),
        ("t", lambda x, t, y: (x, t.float(), y)),
        ("t", lambda x, t, y: (x, t[:2], y)),
        ("y", lambda x, t, y: (x, t, torch.full((B,), 11))),
        ("y", lambda x, t, y: (x, t, torch.full((B,), -1))),
        ("y", lambda x, t, y: (x, t, y[:, None])),
    ],
)
def test_bad_inputs_raise(unet: ConditionalUNet, name: str, change) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must"):
        unet(*change(*_inputs()))


def test_classifiers_validate_inputs() -> None:
    x, t, _ = _inputs()
    with pytest.raises(ValueError, match="^t must lie in 0..99"):
        NoisyImageClassifier(T=100)(x, t + 100)
    with pytest.raises(ValueError, match="^x must"):
        NoisyImageClassifier()(x[:, :, :14], t)
    with pytest.raises(ValueError, match="^x must"):
        ImageClassifier().features(x.squeeze(1))
    for kwargs in ({"base_channels": 12}, {"emb_dim": 7}, {"T": 0}, {"num_classes": 0}, {"T": 10.0},
                   {"num_classes": True}):
        with pytest.raises(ValueError, match=f"^{next(iter(kwargs))} must"):
            ConditionalUNet(**kwargs)


def test_deterministic_with_fixed_seed() -> None:
    x, t, y = _inputs()
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        with torch.no_grad():
            outputs.append(ConditionalUNet()(x, t, y))
    assert torch.equal(outputs[0], outputs[1])


def test_noisy_classifier_gradient_reaches_the_input() -> None:
    """Classifier guidance needs ``grad_x log p(y | x_t)``."""
    x, t, y = _inputs()
    x.requires_grad_(True)
    log_p = NoisyImageClassifier()(x, t).log_softmax(-1).gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(log_p, x)
    assert grad.shape == x.shape and grad.abs().sum() > 0


def test_overfits_eight_examples_only_through_t_and_y() -> None:
    """Eight copies of one noised image with different ``(t, y)`` and different
    target noise: a net that ignores ``t`` or ``y`` cannot push the loss below
    about 0.375 (see below), a correctly wired one fits all eight."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 1, 28, 28, generator=g) * 2 - 1).expand(8, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3, 0, 0, 0, 0])  # first four differ only in y
    t = torch.tensor([500, 500, 500, 500, 100, 300, 700, 900])  # 0, 4..7 differ only in t
    target = torch.randn(8, 1, 28, 28, generator=g)
    # Ignoring y leaves items 0..3 indistinguishable, ignoring t items 0, 4..7: the best
    # constant fit of k unit-variance targets leaves (k-1)/k each, i.e. >= 4/8 * 3/4 overall.
    model = ConditionalUNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = (model(x, t, y) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.9 and losses[-1] < 0.1
