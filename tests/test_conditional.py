"""Sampling with labels: digit grids and samples per label are the public sampler on the given
noise with the right eps closure, reproducible, and bad inputs are named."""

import pytest
import torch

from course_lib import conditional, diffusion, guidance, toy

S = diffusion.make_schedule("linear", 1000)


@pytest.fixture(scope="module")
def mixture():
    return toy.anisotropic()


@pytest.fixture(scope="module")
def schedule():
    return S


def test_grid_labels_and_noise():
    assert conditional.grid_labels(3).tolist() == list(range(10)) * 3
    x_T = conditional.grid_noise(2, seed=5)
    assert x_T.shape == (20, 1, 28, 28)
    torch.testing.assert_close(x_T, conditional.grid_noise(2, seed=5))
    assert not torch.equal(x_T, conditional.grid_noise(2, seed=6))


def test_cfg_grid_is_the_public_sampler_on_the_same_noise(tiny):
    model = tiny[0]
    x_T = conditional.grid_noise(2, seed=1)
    x_T[1] = x_T[0]  # digits 0 and 1 start from the same noise
    images = conditional.cfg_grid(model, 2.0, x_T, steps=3, schedule=S)
    assert images.shape == (20, 1, 28, 28) and images.abs().max() <= 1.0
    direct = diffusion.sample(guidance.model_cfg_eps_fn(model, conditional.grid_labels(2), 2.0, 10), (20, 1, 28, 28), S,
                              steps=3, eta=0.0, x_T=x_T).clamp(-1, 1)
    torch.testing.assert_close(images, direct)
    torch.testing.assert_close(conditional.cfg_grid(model, 2.0, x_T, steps=3), images)  # default schedule: linear, T
    # w = -1 ignores the label, so equal noise gives equal digits; at w = 0 the label matters
    uncond = conditional.cfg_grid(model, -1.0, x_T, steps=3, schedule=S)
    torch.testing.assert_close(uncond[0], uncond[1])
    cond = conditional.cfg_grid(model, 0.0, x_T, steps=3, schedule=S)
    assert (cond[0] - cond[1]).abs().max() > 1e-4
    assert (cond - images).abs().max() > 1e-4  # the weight changes the picture from the same noise


def test_classifier_grid_at_gamma_zero_is_unconditional(tiny):
    model, classifier, _ = tiny
    x_T = conditional.grid_noise(1, seed=2)
    plain = conditional.classifier_grid(model, classifier, 0.0, x_T, steps=3, schedule=S)
    torch.testing.assert_close(plain, conditional.cfg_grid(model, -1.0, x_T, steps=3, schedule=S), atol=1e-3, rtol=0)
    steered = conditional.classifier_grid(model, classifier, 5.0, x_T, steps=3, schedule=S)
    assert steered.shape == (10, 1, 28, 28) and (steered - plain).abs().max() > 1e-4


def test_bad_grid_inputs_raise_value_error(tiny):
    model, classifier, _ = tiny
    x_T = conditional.grid_noise(1)
    with pytest.raises(ValueError, match="x_T must be"):
        conditional.cfg_grid(model, 1.0, torch.randn(15, 1, 28, 28))
    with pytest.raises(ValueError, match="w must"):
        conditional.cfg_grid(model, float("nan"), x_T)
    with pytest.raises(ValueError, match="w must"):
        conditional.cfg_grid(model, -2.0, x_T)
    with pytest.raises(ValueError, match="steps must"):
        conditional.cfg_grid(model, 1.0, x_T, steps=0)
    with pytest.raises(ValueError, match="gamma must"):
        conditional.classifier_grid(model, classifier, -0.5, x_T)
    with pytest.raises(ValueError, match="T=100"):
        conditional.cfg_grid(model, 1.0, x_T, schedule=diffusion.make_schedule("linear", 100))
    with pytest.raises(ValueError, match="m must"):
        conditional.grid_labels(0)
    with pytest.raises(ValueError, match="seed must"):
        conditional.grid_noise(1, seed=-1)


def test_sample_by_label_is_reproducible_and_checks_labels(mixture, schedule):
    oracle = toy.OracleDenoiser(mixture, schedule)
    a = conditional.sample_by_label(oracle, [1], 50, schedule, steps=10, seed=3)
    b = conditional.sample_by_label(oracle, [1], 50, schedule, steps=10, seed=3)
    assert torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="labels"):
        conditional.sample_by_label(oracle, [4], 50, schedule)


@pytest.fixture(scope="module")
def tiny_unet():
    """A small random conditional U-Net: fast, and its output depends on x, t and y."""
    from course_lib.unet import ConditionalUNet

    torch.manual_seed(0)
    return ConditionalUNet(base_channels=8, emb_dim=8).eval()


def test_sample_with_labels_is_the_public_sampler_with_the_label_alone(tiny_unet, schedule):
    x_T = conditional.grid_noise(1, seed=0)
    labels = torch.arange(10)
    images = conditional.sample_with_labels(tiny_unet, labels, x_T, schedule, steps=3, clip=1.0)
    direct = diffusion.sample(guidance.model_eps_fn(tiny_unet, labels, 10), (10, 1, 28, 28), schedule, steps=3,
                              eta=0.0, x_T=x_T).clamp(-1, 1)
    torch.testing.assert_close(images, direct)
    # classifier-free guidance at w = 0 is the label alone, and at w = -1 the null label
    torch.testing.assert_close(images, conditional.cfg_grid(tiny_unet, 0.0, x_T, steps=3, schedule=schedule),
                               atol=1e-4, rtol=1e-4)  # batches of 20 vs 10: float noise only
    null = conditional.sample_with_labels(tiny_unet, torch.full((10,), 10), x_T, schedule, steps=3, clip=1.0)
    torch.testing.assert_close(null, conditional.cfg_grid(tiny_unet, -1.0, x_T, steps=3, schedule=schedule),
                               atol=1e-4, rtol=1e-4)  # batches of 20 vs 10: float noise only
    unclipped = conditional.sample_with_labels(tiny_unet, labels, x_T, schedule, steps=3)
    torch.testing.assert_close(unclipped.clamp(-1, 1), images)


def test_sample_with_labels_stochastic_draws_come_from_the_generator(tiny_unet, schedule):
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    draw = [conditional.sample_with_labels(tiny_unet, 3, x_T, schedule, steps=3, eta=1.0,
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
        conditional.sample_with_labels(tiny_unet, steps=2, **args)


def test_noise_under_labels_layout():
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    noise, y = conditional.noise_under_labels(x_T, range(11))
    assert noise.shape == (33, 1, 28, 28) and y.tolist() == list(range(11)) * 3
    for r in range(3):
        for j in range(11):
            assert torch.equal(noise[r * 11 + j], x_T[r])  # row r shares noise r; column j has label j
    _, y2 = conditional.noise_under_labels(x_T[:, 0, 0, :2], torch.tensor([4, 7]))
    assert y2.tolist() == [4, 7] * 3
    for bad in ([], [-1], [1.5], [True], "01"):
        with pytest.raises(ValueError, match="labels"):
            conditional.noise_under_labels(x_T, bad)
    with pytest.raises(ValueError, match="x_T"):
        conditional.noise_under_labels(torch.zeros(3), [0])
