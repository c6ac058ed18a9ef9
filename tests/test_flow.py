"""Flow-matching velocity against eps and the exact mixture: CFG on the velocity is CFG on eps."""

import pytest
import torch

from course_lib import flow, guidance, toy
from course_lib.sample_metrics import sliced_wasserstein

MIX = toy.GaussianMixture2D([[0.0, 0.0], [2.2, -0.4], [-1.8, 1.5]],
                            [[[0.3, 0.1], [0.1, 0.2]], [[0.05, 0.0], [0.0, 0.4]], [[0.2, 0.0], [0.0, 0.05]]],
                            [0.6, 0.15, 0.25], labels=[0, 1, 1])
X = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
TAU = torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01


def _eps(mixture, y, tau):
    """Exact eps of the rectified-flow path: -tau times the score of x_tau's law."""
    target = mixture if y is None else mixture.conditional(y)
    out = torch.empty_like(X)
    for i in range(X.shape[0]):
        a, s = 1 - float(TAU[i]), float(TAU[i])
        law = toy.GaussianMixture2D(a * target.means, a**2 * target.covs + s**2 * torch.eye(2, dtype=torch.float64),
                                    target.weights)
        out[i] = -s * law.score(X[i:i + 1])[0]
    return out


def test_conversions_are_inverse_and_match_the_exact_velocity():
    path = flow.linear_path(TAU)
    eps = _eps(MIX, 1, TAU)
    torch.testing.assert_close(flow.velocity_from_eps(eps, X, path), flow.mixture_velocity_fn(MIX, 1)(X, TAU))
    torch.testing.assert_close(flow.eps_from_velocity(flow.velocity_from_eps(eps, X, path), X, path), eps)
    general = (torch.rand(64, dtype=torch.float64) + 0.1, torch.rand(64, dtype=torch.float64),
               -torch.rand(64, dtype=torch.float64), torch.rand(64, dtype=torch.float64) + 0.1)
    torch.testing.assert_close(flow.eps_from_velocity(flow.velocity_from_eps(eps, X, general), X, general), eps)


def test_cfg_on_velocity_equals_cfg_on_eps():
    path = flow.linear_path(TAU)
    v_c, v_u = flow.mixture_velocity_fn(MIX, 1), flow.mixture_velocity_fn(MIX)
    e_c, e_u = _eps(MIX, 1, TAU), _eps(MIX, None, TAU)
    for w in [-1.0, 0.0, 1.0, 4.0]:
        on_velocity = guidance.cfg(v_c, v_u, w)(X, TAU)
        on_eps = flow.velocity_from_eps((1 + w) * e_c - w * e_u, X, path)
        torch.testing.assert_close(on_velocity, on_eps)


def test_euler_on_exact_velocity_samples_the_class():
    n = 2000
    x_1 = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x = flow.euler_sample(flow.mixture_velocity_fn(MIX, 1), x_1, steps=100)
    target = MIX.sample(n, y=1, generator=torch.Generator().manual_seed(3))[0]
    floor = sliced_wasserstein(target, MIX.sample(n, y=1, generator=torch.Generator().manual_seed(4))[0])
    assert sliced_wasserstein(x, target) < 2.5 * floor


@pytest.mark.parametrize("call, name", [
    (lambda: flow.linear_path(torch.tensor([0.0, 0.5])), "tau"),
    (lambda: flow.linear_path(torch.tensor([1.5])), "tau"),
    (lambda: flow.velocity_from_eps(X, X, flow.linear_path(torch.ones(64, dtype=torch.float64))), "a must"),
    (lambda: flow.velocity_from_eps(X[:3], X, flow.linear_path(TAU)), "eps"),
    (lambda: flow.mixture_velocity_fn("m"), "mixture"),
    (lambda: flow.euler_sample(flow.mixture_velocity_fn(MIX), X, 0), "^steps must be an integer >= 1, got 0"),
    (lambda: flow.euler_sample(flow.mixture_velocity_fn(MIX), X, True), "^steps must be an integer >= 1, got True"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("tau", [torch.full((3,), 0.5), torch.full((4, 1), 0.5), [0.5] * 4,
                                 torch.full((4,), 1, dtype=torch.long), torch.tensor([0.5, 0.5, 0.0, 0.5]),
                                 torch.tensor([0.5, 1.5, 0.5, 0.5])])
def test_velocity_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match="tau must"):
        flow.mixture_velocity_fn(MIX)(X[:4], tau)


def test_linear_path_rejects_bad_tau_and_accepts_one():
    a, s, da, ds = flow.linear_path(torch.tensor([1.0, 0.25], dtype=torch.float64))
    assert a.tolist() == [0.0, 0.75] and s.tolist() == [1.0, 0.25] and da.tolist() == [-1, -1] and ds.tolist() == [1, 1]
    for tau in ([0.5], torch.ones(2, 2)):
        with pytest.raises(ValueError, match="tau must be a 1-D float tensor"):
            flow.linear_path(tau)


def test_eps_from_velocity_rejects_a_vanished_signal_or_slope():
    x, v = X[:2], X[2:4]
    zero_a = (torch.tensor([0.0, 0.5]), torch.tensor([1.0, 0.5]), -torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="path's a must be > 0"):
        flow.eps_from_velocity(v, x, zero_a)
    flat = (torch.ones(2), torch.ones(2), torch.ones(2), torch.ones(2))        # ds - da s / a = 0
    with pytest.raises(ValueError, match="must not vanish"):
        flow.eps_from_velocity(v, x, flat)
    unit = (torch.ones(2), torch.ones(2), torch.zeros(2), torch.ones(2))       # slope 1: eps = v
    torch.testing.assert_close(flow.eps_from_velocity(v, x, unit), v)
    with pytest.raises(ValueError, match="v must have the shape of x"):
        flow.eps_from_velocity(v[:, :1], x, unit)


def test_velocity_keeps_the_input_dtype():
    v = flow.mixture_velocity_fn(MIX)(X[:4].float(), torch.full((4,), 0.5))
    assert v.dtype == torch.float32
    torch.testing.assert_close(v, flow.mixture_velocity_fn(MIX)(X[:4], torch.full((4,), 0.5)).float())


def test_velocity_and_eps_keep_the_dtype_of_x_whatever_the_paths():
    path = flow.linear_path(TAU[:4])                                         # float64 coefficients
    x, eps = X[:4].float(), X[4:8].float()
    v = flow.velocity_from_eps(eps, x, path)
    assert v.dtype == torch.float32 and flow.eps_from_velocity(v, x, path).dtype == torch.float32


def test_velocity_is_computed_in_float64_for_a_float32_tau():
    """Data N(m, v I): E[x0 | x_tau] = m + c v (x - c m) / (c^2 v + s^2), c = 1 - tau, s = tau; with a
    float32 tau the path coefficients are still float64 (1e-12, not float32's 1e-7)."""
    v, m = 0.25, torch.tensor([0.5, -1.0], dtype=torch.float64)
    mix = toy.GaussianMixture2D(m[None].tolist(), [[[v, 0.0], [0.0, v]]], [1.0])
    tau = torch.tensor([0.3, 0.55, 0.9, 0.123], dtype=torch.float32)
    x = X[:4]
    c, s = 1 - tau.double()[:, None], tau.double()[:, None]
    x0_hat = m + c * v * (x - c * m) / (c**2 * v + s**2)
    torch.testing.assert_close(flow.mixture_velocity_fn(mix)(x, tau), (x - x0_hat) / s, rtol=1e-12, atol=1e-12)
