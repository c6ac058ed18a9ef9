"""guidance.rescaled, threshold_x0 / thresholded and loss_guidance (lesson 06): closed forms,
and agreement with diffusers' own functions on the same tensors (skipped without diffusers)."""

import math

import pytest
import torch

from course_lib import diffusion, guidance

SCHEDULE = diffusion.make_schedule("linear", 1000)


def _const(eps):
    return lambda x, t: eps


def _t(value, batch):
    return torch.full((batch,), value, dtype=torch.long)


# --------------------------------------------------------------------------- rescaled

@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (5, 2)])
@pytest.mark.parametrize("phi", [0.0, 0.3, 0.7, 1.0])
def test_rescaled_matches_diffusers_rescale_noise_cfg(shape, phi):
    guider_utils = pytest.importorskip("diffusers.guiders.guider_utils")
    g = torch.Generator().manual_seed(0)
    eps_c, eps_g = torch.randn(shape, generator=g), 3 * torch.randn(shape, generator=g) + 0.5
    ours = guidance.rescaled(_const(eps_g), _const(eps_c), phi)(torch.zeros(shape), _t(10, shape[0]))
    theirs = guider_utils.rescale_noise_cfg(eps_g, eps_c, guidance_rescale=phi)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_rescaled_closed_forms():
    g = torch.Generator().manual_seed(1)
    eps_c, eps_g = torch.randn(4, 1, 28, 28, generator=g), 4 * torch.randn(4, 1, 28, 28, generator=g)
    x, t = torch.zeros(4, 1, 28, 28), _t(500, 4)
    assert torch.equal(guidance.rescaled(_const(eps_g), _const(eps_c), 0.0)(x, t), eps_g)
    full = guidance.rescaled(_const(eps_g), _const(eps_c), 1.0)(x, t)
    torch.testing.assert_close(full.flatten(1).std(1), eps_c.flatten(1).std(1))      # the conditional std
    torch.testing.assert_close(full / eps_g, (full / eps_g)[:, :1, :1, :1].expand_as(full))  # a pure rescale
    # a guided prediction that already has the conditional std is left alone at every phi
    assert torch.allclose(guidance.rescaled(_const(eps_c), _const(eps_c), 0.7)(x, t), eps_c)


def test_rescaled_refuses_bad_input():
    f = _const(torch.zeros(1, 2))
    for phi in (-0.1, 1.5, float("nan"), float("inf"), True, "0.7"):
        with pytest.raises(ValueError, match="phi"):
            guidance.rescaled(f, f, phi)
    with pytest.raises(ValueError, match="guided_fn"):
        guidance.rescaled(None, f, 0.5)


# --------------------------------------------------------------------------- thresholding

def _diffusers_ddim(percentile, max_value, steps):
    diffusers = pytest.importorskip("diffusers")
    return diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                   clip_sample=False, set_alpha_to_one=True, thresholding=True,
                                   dynamic_thresholding_ratio=percentile, sample_max_value=max_value,
                                   prediction_type="epsilon")


@pytest.mark.parametrize("percentile,max_value", [(0.995, 1.0), (0.9, 3.0), (0.5, 1.5), (1.0, 10.0)])
def test_threshold_x0_matches_diffusers(percentile, max_value):
    scheduler = _diffusers_ddim(percentile, max_value, 10)
    x0 = 2.5 * torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    x0[0] *= 0.2                                                      # one sample inside [-1, 1]
    torch.testing.assert_close(guidance.threshold_x0(x0, percentile, max_value), scheduler._threshold_sample(x0))


@pytest.mark.parametrize("max_value", [1.0, 2.0])
def test_thresholded_ddim_step_matches_diffusers_step(max_value):
    steps = 10
    scheduler = _diffusers_ddim(0.995, max_value, steps)
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(3)
    x, eps = torch.randn(4, 1, 28, 28, generator=g), 2 * torch.randn(4, 1, 28, 28, generator=g)
    for t in scheduler.timesteps[:3].tolist() + [int(scheduler.timesteps[-1])]:
        t_prev = t - 1000 // steps
        theirs = scheduler.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        eps_thr = guidance.thresholded(_const(eps), SCHEDULE, 0.995, max_value)(x, _t(t, 4))
        ours = diffusion.ddim_step(x, eps_thr, t, t_prev, SCHEDULE, eta=0.0)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_thresholded_closed_forms():
    g = torch.Generator().manual_seed(4)
    t = _t(300, 5)
    ab, sigma = float(SCHEDULE.alpha_bars[300]), float(SCHEDULE.sigmas[300])
    x0 = 0.9 * torch.rand(5, 1, 28, 28, generator=g) * 2 - 0.9       # inside [-1, 1]: untouched
    eps = torch.randn(5, 1, 28, 28, generator=g)
    x = math.sqrt(ab) * x0 + sigma * eps
    torch.testing.assert_close(guidance.thresholded(_const(eps), SCHEDULE, 0.995, 5.0)(x, t), eps,
                               rtol=1e-4, atol=1e-4)
    # an x0_hat at 3x the range with max_value 3: the implied x0 is divided by its percentile
    big = 3 * x0 / x0.abs().flatten(1).max(1).values[:, None, None, None]
    x = math.sqrt(ab) * big + sigma * eps
    out = guidance.thresholded(_const(eps), SCHEDULE, 1.0, 3.0)(x, t)
    implied = (x - sigma * out) / math.sqrt(ab)
    torch.testing.assert_close(implied, big / 3, rtol=1e-4, atol=1e-4)
    assert implied.abs().max() <= 1 + 1e-5


def test_thresholding_refuses_bad_input():
    f = _const(torch.zeros(1, 2))
    for kwargs, name in (({"percentile": 0.0}, "percentile"), ({"percentile": 1.2}, "percentile"),
                         ({"percentile": float("nan")}, "percentile"), ({"max_value": 0.5}, "max_value"),
                         ({"max_value": float("inf")}, "max_value")):
        with pytest.raises(ValueError, match=name):
            guidance.thresholded(f, SCHEDULE, **kwargs)
    with pytest.raises(ValueError, match="schedule"):
        guidance.thresholded(f, None)
    with pytest.raises(ValueError, match="x0"):
        guidance.threshold_x0(torch.zeros(3))


# --------------------------------------------------------------------------- loss guidance

def test_loss_guidance_closed_form_through_the_model():
    """eps(x) = a x: x0_hat = x (1 - sigma a) / sqrt(ab); loss = |x0_hat - c|^2 / 2 has
    grad_x = (1 - sigma a) / sqrt(ab) * (x0_hat - c), added as weight * sigma * grad."""
    a, c, weight, tt = 0.3, torch.tensor([1.0, -2.0]), 2.5, 700
    ab, sigma = float(SCHEDULE.alpha_bars[tt]), float(SCHEDULE.sigmas[tt])
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    loss = lambda x0, t: 0.5 * ((x0 - c) ** 2).sum(1)  # noqa: E731
    out = guidance.loss_guidance(lambda x, t: a * x, loss, weight, SCHEDULE)(x, _t(tt, 6))
    x0_hat = x * (1 - sigma * a) / math.sqrt(ab)
    expected = a * x + weight * sigma * (1 - sigma * a) / math.sqrt(ab) * (x0_hat - c)
    torch.testing.assert_close(out, expected)
    assert not out.requires_grad


def test_loss_guidance_is_classifier_guidance_for_a_loss_of_x_t():
    """With eps independent of x and the loss -log p(y | x0_hat) where x0_hat is affine in x_t, loss
    guidance at weight gamma is classifier guidance with the composed classifier."""
    logits_of = lambda z: torch.stack([z[:, 0], -z[:, 0], z[:, 1]], 1)  # noqa: E731
    eps0, tt, gamma = torch.zeros(4, 2, dtype=torch.float64), 400, 1.7
    ab, sigma = float(SCHEDULE.alpha_bars[tt]), float(SCHEDULE.sigmas[tt])
    y = torch.tensor([0, 1, 2, 0])
    nll = lambda x0, t: -torch.log_softmax(logits_of(x0), 1).gather(1, y[:, None])[:, 0]  # noqa: E731
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ours = guidance.loss_guidance(_const(eps0), nll, gamma, SCHEDULE)(x, _t(tt, 4))
    log_prob = lambda x, t: torch.log_softmax(logits_of(x / math.sqrt(ab)), 1)  # noqa: E731
    theirs = guidance.classifier_guidance(_const(eps0), log_prob, y, gamma, SCHEDULE)(x, _t(tt, 4))
    torch.testing.assert_close(ours, theirs)
    assert sigma > 0


def test_loss_guidance_weight_zero_and_bad_input():
    eps = torch.randn(3, 2)
    loss = lambda x0, t: x0.sum(1)  # noqa: E731
    assert torch.equal(guidance.loss_guidance(_const(eps), loss, 0.0, SCHEDULE)(torch.zeros(3, 2), _t(5, 3)), eps)
    for weight in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="weight"):
            guidance.loss_guidance(_const(eps), loss, weight, SCHEDULE)
    with pytest.raises(ValueError, match="loss_fn"):
        guidance.loss_guidance(_const(eps), None, 1.0, SCHEDULE)
    bad = guidance.loss_guidance(lambda x, t: x * 1.0, lambda x0, t: x0.sum(), 1.0, SCHEDULE)
    with pytest.raises(ValueError, match="one loss per sample"):
        bad(torch.zeros(3, 2), _t(5, 3))
