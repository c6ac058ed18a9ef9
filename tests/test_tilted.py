"""The tilted density, against closed forms, Monte Carlo and finite differences."""

import math

import pytest
import torch

from course_lib import diffusion, guidance, sample_metrics, toy
from course_lib.tilted import TiltedDensity

MIX = toy.anisotropic()
S = diffusion.make_schedule("linear", 1000)


def points(n: int = 300, seed: int = 0) -> torch.Tensor:
    return MIX.sample(n, generator=torch.Generator().manual_seed(seed))[0].double()


def test_no_tilt_and_full_untilt_are_the_conditional_and_the_marginal():
    x = points()
    torch.testing.assert_close(TiltedDensity(MIX, 1, 0.0).log_prob(x), MIX.log_prob(x, 1), rtol=0, atol=1e-8)
    torch.testing.assert_close(TiltedDensity(MIX, 1, -1.0).log_prob(x), MIX.log_prob(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize("w", [-0.5, 1.0, 3.0])
def test_grid_normaliser_matches_monte_carlo(w):
    # p_w = p(x|y) p(y|x)^w / C with C = E_{p(x|y)}[p(y|x)^w]; our log_norm drops the constant w log pi_y
    y = 0
    x = MIX.sample(200_000, y=y, generator=torch.Generator().manual_seed(1))[0].double()
    log_c = torch.logsumexp(w * MIX.posterior(x)[:, y].log(), 0) - math.log(len(x))
    target = TiltedDensity(MIX, y, w)
    assert target.log_norm + w * math.log(MIX.weights[y]) == pytest.approx(float(log_c), abs=0.01)


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_score_is_the_gradient_of_log_prob_and_the_cfg_combination(w):
    target, x, h = TiltedDensity(MIX, 2, w, resolution=101), points(40), 1e-5
    fd = torch.stack([(target.log_prob(x + h * e) - target.log_prob(x - h * e)) / (2 * h)
                      for e in torch.eye(2, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(target.score(x), fd, rtol=1e-5, atol=1e-5)
    cfg = guidance.cfg(lambda x, t: -MIX.score(x, 2), lambda x, t: -MIX.score(x), w)  # eps with sigma = 1
    torch.testing.assert_close(target.score(x), -cfg(x, torch.zeros(len(x), dtype=torch.long)))


@pytest.mark.parametrize("t", [10, 150, 600])
def test_noised_score_without_tilt_is_the_exact_noised_score(t):
    a = S.alpha_bars[t].item()
    for w, y in ((0.0, 0), (-1.0, None)):  # where the noised target has its mass
        x = MIX.noised(a).sample(300, y=y, generator=torch.Generator().manual_seed(2))[0].double()
        torch.testing.assert_close(TiltedDensity(MIX, 0, w).noised_score(x, a), MIX.noised(a).score(x, y),
                                   rtol=1e-6, atol=1e-6)


def test_cfg_score_is_not_the_noised_tilted_score_except_near_t0():
    w, target = 3.0, TiltedDensity(MIX, 0, 3.0)

    def gap(t):
        tt = torch.full((300,), t)
        noise = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        x_t = diffusion.q_sample(target.sample(300, torch.Generator().manual_seed(3)).double(), tt, noise, S)
        cfg = diffusion.score_from_eps(guidance.cfg(MIX.eps_fn(S, 0), MIX.eps_fn(S), w)(x_t, tt), tt, S)
        tilt = target.noised_score(x_t, S.alpha_bars[t].item())
        return float(((cfg - tilt) ** 2).sum(1).mean() / (tilt**2).sum(1).mean())

    assert gap(3) < 1e-3      # both are (nearly) the score of p_w itself
    assert gap(250) > 0.5     # tilting and noising do not commute


def test_samples_follow_the_grid_density_and_are_reproducible():
    target = TiltedDensity(MIX, 1, 2.0)
    a = target.sample(4000, generator=torch.Generator().manual_seed(5))
    b = target.sample(4000, generator=torch.Generator().manual_seed(5))
    assert a.dtype == torch.float32 and a.shape == (4000, 2)
    torch.testing.assert_close(a, b)
    probs = target.cell_log_probs.exp()
    mean = probs @ target.points
    assert torch.allclose(a.double().mean(0), mean, atol=0.03)
    no_tilt = TiltedDensity(MIX, 1, 0.0).sample(2000, generator=torch.Generator().manual_seed(6))
    exact = MIX.sample(2000, y=1, generator=torch.Generator().manual_seed(7))[0]
    floor = sample_metrics.sliced_wasserstein(MIX.sample(2000, y=1, generator=torch.Generator().manual_seed(8))[0], exact)
    assert sample_metrics.sliced_wasserstein(no_tilt, exact) < 2 * floor + 0.02


def test_bad_arguments_raise_value_errors_naming_them():
    for w in (-1.5, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="w must"):
            TiltedDensity(MIX, 0, w)
    for y in (3, -1, True, 1.0):
        with pytest.raises(ValueError, match="y must"):
            TiltedDensity(MIX, y, 1.0)
    with pytest.raises(ValueError, match="mixture must"):
        TiltedDensity("anisotropic", 0, 1.0)
    with pytest.raises(ValueError, match="extent .* too small"):
        TiltedDensity(MIX, 0, 1.0, extent=(-2, 2, -2, 2))
    with pytest.raises(ValueError, match="extent must"):
        TiltedDensity(MIX, 0, 1.0, extent=(1, -1, -2, 2))
    with pytest.raises(ValueError, match="resolution must"):
        TiltedDensity(MIX, 0, 1.0, resolution=2)
    target = TiltedDensity(MIX, 0, 1.0, resolution=101)
    for a in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha_bar must"):
            target.noised_score(points(5), a)
    with pytest.raises(ValueError, match="x must"):
        target.noised_score(torch.zeros(5, 3), 0.5)
    with pytest.raises(ValueError, match="chunk must"):
        target.noised_score(points(5), 0.5, chunk=0)
    with pytest.raises(ValueError, match="n must"):
        target.sample(0)
