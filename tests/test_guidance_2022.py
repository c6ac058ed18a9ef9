"""Guidance since 2022 (interval, autoguidance, compose) against their defining identities on exact mixtures."""

import pytest
import torch

from course_lib import diffusion, guidance, toy

MIX = toy.GaussianMixture2D([[0.0, 0.0], [1.2, -0.4], [-0.8, 1.5]],
                            [[[0.9, 0.5], [0.5, 0.7]], [[0.25, -0.1], [-0.1, 1.1]], [[0.4, 0.0], [0.0, 0.15]]],
                            [0.6, 0.15, 0.25])
S = diffusion.make_schedule("linear", 1000)
X = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
T = torch.randint(1000, (64,), generator=torch.Generator().manual_seed(1))
COND, UNCOND = MIX.eps_fn(S, y=1), MIX.eps_fn(S)


def test_interval_whole_range_is_guided_and_empty_window_is_plain():
    guided = guidance.cfg(COND, UNCOND, 2.0)
    torch.testing.assert_close(guidance.interval(guided, COND, 0, S.T - 1)(X, T), guided(X, T))
    for lo, hi in [(5, 4), (S.T, S.T + 10), (-10, -1)]:
        torch.testing.assert_close(guidance.interval(guided, COND, lo, hi)(X, T), COND(X, T))


def test_interval_mixes_per_sample_by_time():
    guided = guidance.cfg(COND, UNCOND, 3.0)
    out = guidance.interval(guided, COND, 200, 600)(X, T)
    inside = (T >= 200) & (T <= 600)
    assert inside.any() and (~inside).any()
    torch.testing.assert_close(out[inside], guided(X, T)[inside])
    torch.testing.assert_close(out[~inside], COND(X, T)[~inside])
    t_edge = torch.tensor([199, 200, 600, 601])                            # both ends belong to the window
    x_edge = X[:4]
    torch.testing.assert_close(guidance.interval(guided, COND, 200, 600)(x_edge, t_edge),
                               torch.cat([COND(x_edge, t_edge)[:1], guided(x_edge, t_edge)[1:3],
                                          COND(x_edge, t_edge)[3:]]))


def test_autoguidance_identities():
    bad = MIX.broadened(0.5).eps_fn(S, y=1)
    for w in [-1.0, 0.0, 0.7, 4.0]:
        torch.testing.assert_close(guidance.autoguidance(COND, COND, w)(X, T), COND(X, T))
        torch.testing.assert_close(guidance.autoguidance(COND, bad, w)(X, T),
                                   (1 + w) * COND(X, T) - w * bad(X, T))
    torch.testing.assert_close(guidance.autoguidance(COND, bad, -1.0)(X, T), bad(X, T))


def test_compose_one_term_is_cfg_and_scales_add():
    for w in [-1.0, 0.0, 1.5, 6.0]:
        torch.testing.assert_close(guidance.compose(UNCOND, [(COND, 1 + w)])(X, T),
                                   guidance.cfg(COND, UNCOND, w)(X, T))
    torch.testing.assert_close(guidance.compose(UNCOND, [])(X, T), UNCOND(X, T))
    other = MIX.eps_fn(S, y=2)
    expected = UNCOND(X, T) + 1.5 * (COND(X, T) - UNCOND(X, T)) - 0.5 * (other(X, T) - UNCOND(X, T))
    torch.testing.assert_close(guidance.compose(UNCOND, [(COND, 1.5), (other, -0.5)])(X, T), expected)


def test_compose_at_clean_end_is_score_of_weighted_product():
    """At t = 0 (sigma_0 -> score) the composed eps is -sigma_0 times the score of
    p_u^(1 - s1 - s2) p_1^s1 p_2^s2, here checked with the exact scores of t = 0's noised law."""
    t0 = torch.zeros(X.shape[0], dtype=torch.long)
    noised = MIX.noised(float(S.alpha_bars[0]))
    score = 0.2 * noised.score(X) + 1.5 * noised.score(X, 1) - 0.7 * noised.score(X, 2)
    eps = guidance.compose(UNCOND, [(COND, 1.5), (MIX.eps_fn(S, y=2), -0.7)])(X, t0)
    torch.testing.assert_close(eps, -S.sigmas[0] * score)


@pytest.mark.parametrize("call, name", [
    (lambda: guidance.interval(COND, UNCOND, float("nan"), 3), "t_lo"),
    (lambda: guidance.interval(COND, UNCOND, 0, "high"), "t_hi"),
    (lambda: guidance.interval(COND, 3.0, 0, 10), "plain_fn"),
    (lambda: guidance.autoguidance(COND, UNCOND, float("inf")), "w"),
    (lambda: guidance.autoguidance(COND, UNCOND, -2.0), "w"),
    (lambda: guidance.autoguidance(None, UNCOND, 1.0), "good_fn"),
    (lambda: guidance.compose(UNCOND, [(COND, float("nan"))]), "terms[0] scale"),
    (lambda: guidance.compose(UNCOND, [COND]), "terms[0]"),
    (lambda: guidance.compose(UNCOND, COND), "terms"),
    (lambda: guidance.compose("u", []), "uncond_fn"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        call()
