"""course_lib.saturation: guided digits before the clamp, the fixes, and the switchable slider's render."""

import pytest
import torch

from course_lib import conditional, diffusion, guidance, saturation
from course_lib.unet import ConditionalUNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ConditionalUNet(num_classes=10, T=100, base_channels=8, emb_dim=16).eval()


def test_outside_fraction():
    x = torch.tensor([[-1.0, 1.0, 1.2, -1.5], [0.0, 0.5, 1.05, -0.2]])
    assert saturation.outside_fraction(x) == 3 / 8
    assert saturation.outside_fraction(x, 1.1) == 2 / 8
    with pytest.raises(ValueError, match="bound"):
        saturation.outside_fraction(x, 0)


def test_fixes_are_the_guidance_wrappers(model):
    schedule = diffusion.make_schedule("linear", 100)
    labels = conditional.grid_labels(1)
    x, t = torch.randn(10, 1, 28, 28), torch.full((10,), 60, dtype=torch.long)
    plain = guidance.model_cfg_eps_fn(model, labels, 3.0, 10)
    with torch.no_grad():
        torch.testing.assert_close(saturation.fixed_cfg_eps_fn(model, labels, 3.0, schedule)(x, t), plain(x, t))
        torch.testing.assert_close(saturation.fixed_cfg_eps_fn(model, labels, 3.0, schedule, "threshold")(x, t),
                                   guidance.thresholded(plain, schedule)(x, t))
        torch.testing.assert_close(saturation.fixed_cfg_eps_fn(model, labels, 3.0, schedule, "rescale", phi=0.5)(x, t),
                                   guidance.rescaled(plain, guidance.model_eps_fn(model, labels, 10), 0.5)(x, t))
    with pytest.raises(ValueError, match="fix"):
        saturation.fixed_cfg_eps_fn(model, labels, 3.0, schedule, "blur")


def test_clipping_x0_hat_keeps_samples_in_range_and_render_is_deterministic(model):
    schedule = diffusion.make_schedule("linear", 100)
    x_T = conditional.grid_noise(1, seed=3)
    clipped = saturation.guided_digits(model, 8.0, x_T, "threshold", steps=5, schedule=schedule)
    assert saturation.outside_fraction(clipped) == 0.0
    render = saturation.fix_render(model, "none", m=1, steps=5, schedule=schedule)
    a, b = render(2.0, 0), render(2.0, 0)
    assert torch.equal(a, b) and a.shape == (10, 1, 28, 28) and a.abs().max() <= 1


def test_switchable_builds_one_explorer_per_fix(model):
    explorers = saturation.switchable(model, [0, 2], 0, m=1, steps=2, precompute=False)
    assert list(explorers) == list(saturation.FIXES)
    assert "fix: threshold" in explorers["threshold"].readout(2.0)
