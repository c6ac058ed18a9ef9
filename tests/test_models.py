import pytest
import torch

from course_lib import diffusion, guidance, models, toy, unet
from course_lib.models import ConditionalMLP, NoisyClassifier2D, timestep_embedding

B = 6


def _inputs(seed: int = 0, batch: int = B, T: int = 1000):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, generator=g), torch.randint(0, T, (batch,), generator=g), \
        torch.randint(0, 4, (batch,), generator=g)


@pytest.fixture(scope="module")
def cfg_model() -> ConditionalMLP:
    torch.manual_seed(0)
    model = ConditionalMLP(3).eval()
    with torch.no_grad():  # the affine head starts at zero; give it weights so tests see it
        model.affine.weight.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def clf_model() -> NoisyClassifier2D:
    torch.manual_seed(0)
    return NoisyClassifier2D(3).eval()


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_shapes_and_defaults(cfg_model, clf_model) -> None:
    x, t, y = _inputs()
    assert cfg_model(x, t, y).shape == (B, 2) and cfg_model(x, t, y).dtype == torch.float32
    assert clf_model(x, t).shape == (B, 3)
    assert guidance.classifier_log_prob_fn(clf_model)(x, t).exp().sum(1).allclose(torch.ones(B))
    assert (cfg_model.T, cfg_model.width, cfg_model.depth, cfg_model.null_label) == (1000, 64, 3, 3)
    assert ConditionalMLP(3, T=50, width=16, depth=0)(x, t % 50, y).shape == (B, 2)
    assert cfg_model(x[:0], t[:0], y[:0]).shape == (0, 2)


def test_parameter_bound_keeps_the_slider_fast(cfg_model, clf_model) -> None:
    # a 20-step CFG slider runs 20 forwards of batch 2000 per redraw; these sizes keep it < 100 ms
    assert _n_params(cfg_model) < 60_000
    assert _n_params(clf_model) < 40_000


def test_null_label_is_its_own_row(cfg_model) -> None:
    x, t, _ = _inputs()
    by_label = torch.stack([cfg_model(x, t, torch.full((B,), k)) for k in range(4)])
    for k in range(3):
        assert not torch.allclose(by_label[k], by_label[3])
    rows = cfg_model.label.weight
    assert rows.shape == (4, 64)  # num_classes + 1 rows: the last is the null label


@pytest.mark.parametrize("shared_t", [True, False])
def test_batched_rows_match_single_rows(cfg_model, clf_model, shared_t) -> None:
    # a sampler's batch (one shared t) computes the conditioning once per label and gathers it;
    # either way each row must get its own answer
    x, t, y = _inputs(batch=32)
    if shared_t:
        t[:] = 7
    together = cfg_model(x, t, y)
    alone = torch.cat([cfg_model(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(32)])
    assert torch.allclose(together, alone, atol=1e-5)
    together = clf_model(x, t)
    alone = torch.cat([clf_model(x[i:i + 1], t[i:i + 1]) for i in range(32)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_gradients_reach_x_and_every_parameter(cfg_model, clf_model) -> None:
    x, t, y = _inputs()
    x.requires_grad_(True)
    cfg_model(x, t, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in cfg_model.parameters())
    cfg_model.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(guidance.classifier_log_prob_fn(clf_model)(x, t)[:, 0].sum(), x)
    assert grad.shape == (B, 2) and grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [
    lambda x, t, y: (x[:, :1], t, y),                  # wrong feature size
    lambda x, t, y: (x[None], t, y),                   # wrong rank
    lambda x, t, y: (x.long(), t, y),                  # not floating point
    lambda x, t, y: (x, t.float(), y),                 # t not long
    lambda x, t, y: (x, t[:-1], y),                    # t of another batch size
    lambda x, t, y: (x, t + 1000, y),                  # t beyond T - 1
    lambda x, t, y: (x, -t - 1, y),                    # negative t
    lambda x, t, y: (x, t, y + 4),                     # label beyond the null label
    lambda x, t, y: (x, t, y - 5),                     # negative label
    lambda x, t, y: (x, t, y.float()),                 # labels not long
    lambda x, t, y: (x, t, y[:-1]),                    # labels of another batch size
])
def test_bad_inputs_raise_value_error(cfg_model, bad) -> None:
    with pytest.raises(ValueError):
        cfg_model(*bad(*_inputs()))


def test_classifier_rejects_bad_t_and_shape(clf_model) -> None:
    x, t, _ = _inputs()
    for args in ((x, t + 1000), (x[:, :1], t), (x, t.float())):
        with pytest.raises(ValueError):
            clf_model(*args)


@pytest.mark.parametrize("kwargs", [dict(num_classes=0), dict(T=1), dict(width=1), dict(depth=-1),
                                    dict(width=64.0)])
def test_bad_constructor_arguments(kwargs) -> None:
    args = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ConditionalMLP(**args)
    with pytest.raises(ValueError):
        NoisyClassifier2D(**{**args, "num_classes": 1} if "num_classes" in kwargs else args)


def test_timestep_embedding_rescales_to_1000_steps() -> None:
    emb = timestep_embedding(torch.tensor([0, 250, 999]), 16, 1000)
    assert emb.shape == (3, 16) and emb.abs().max() <= 1
    assert torch.allclose(timestep_embedding(torch.tensor([50]), 16, 200), emb[1:2], atol=1e-5)


def test_affine_head_starts_at_zero() -> None:
    torch.manual_seed(0)
    model = ConditionalMLP(3)
    assert model.affine.weight.abs().sum() == 0 and model.affine.bias.abs().sum() == 0


def test_fixed_time_classifier_reads_every_input_at_t0():
    mix, schedule = toy.anisotropic(), diffusion.make_schedule("linear", 1000)
    oracle = toy.OracleClassifier(mix, schedule)
    clf = models.FixedTimeClassifier(oracle, t0=0)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    t = torch.full((50,), 700)
    torch.testing.assert_close(clf(x, t), oracle(x, torch.zeros_like(t)))
    assert not torch.allclose(clf(x, t), oracle(x, t))
    torch.testing.assert_close(guidance.classifier_log_prob_fn(clf)(x, t).exp().sum(1), torch.ones(50))
    assert clf.num_classes == 3 and clf.T == 1000
    with pytest.raises(ValueError, match="t0 must"):
        models.FixedTimeClassifier(oracle, t0=-1)


def test_one_timestep_embedding_for_the_2d_nets_and_the_unet():
    assert unet.timestep_embedding is models.timestep_embedding
    with pytest.raises(ValueError, match="dim must"):
        models.timestep_embedding(torch.arange(3), 5, 1000)
