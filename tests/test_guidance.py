"""CFG, classifier guidance and the guidance of 2022 on (interval, autoguidance, compose) against their
defining identities on exact mixtures."""

import math

import pytest
import torch

from course_lib import diffusion, guidance, toy, validate
from course_lib.sample_metrics import sliced_wasserstein

MIX = toy.GaussianMixture2D([[0.0, 0.0], [1.2, -0.4], [-0.8, 1.5]],
                            [[[0.9, 0.5], [0.5, 0.7]], [[0.25, -0.1], [-0.1, 1.1]], [[0.4, 0.0], [0.0, 0.15]]],
                            [0.6, 0.15, 0.25])
S = diffusion.make_schedule("linear", 1000)
X = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
T = torch.randint(1000, (64,), generator=torch.Generator().manual_seed(1))


def test_cfg_endpoints_and_linearity():
    cond, uncond = MIX.eps_fn(S, y=1), MIX.eps_fn(S)
    torch.testing.assert_close(guidance.cfg(cond, uncond, 0.0)(X, T), cond(X, T))
    torch.testing.assert_close(guidance.cfg(cond, uncond, -1.0)(X, T), uncond(X, T))
    expected = 3.5 * cond(X, T) - 2.5 * uncond(X, T)
    torch.testing.assert_close(guidance.cfg(cond, uncond, 2.5)(X, T), expected)
    half = guidance.cfg(cond, uncond, -0.5)(X, T)
    torch.testing.assert_close(half, 0.5 * cond(X, T) + 0.5 * uncond(X, T))


def test_classifier_guidance_gamma_one_with_exact_posterior_is_conditional():
    """grad log p(x_t) + grad log p(y | x_t) = grad log p(x_t | y), so the guided eps
    equals the exact conditional eps for every label, time and point."""
    for y in range(3):
        guided = guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), y, 1.0, S)
        torch.testing.assert_close(guided(X, T), MIX.eps_fn(S, y=y)(X, T), atol=1e-9, rtol=1e-7)


def test_classifier_guidance_gamma_zero_is_unconditional_and_gamma_scales():
    uncond = MIX.eps_fn(S)
    g0 = guidance.classifier_guidance(uncond, MIX.log_posterior_fn(S), 2, 0.0, S)
    torch.testing.assert_close(g0(X, T), uncond(X, T))
    g1 = guidance.classifier_guidance(uncond, MIX.log_posterior_fn(S), 2, 1.0, S)(X, T)
    g3 = guidance.classifier_guidance(uncond, MIX.log_posterior_fn(S), 2, 3.0, S)(X, T)
    torch.testing.assert_close(g3 - uncond(X, T), 3 * (g1 - uncond(X, T)))


def test_cfg_with_exact_eps_is_classifier_guidance_with_gamma_one_plus_w():
    """With exact scores, CFG's implicit classifier is the true posterior: cfg(w)
    equals classifier guidance with gamma = 1 + w (docs/conventions.md, guidance weights)."""
    for w in [-0.5, 0.0, 2.0]:
        via_cfg = guidance.cfg(MIX.eps_fn(S, y=0), MIX.eps_fn(S), w)(X, T)
        via_cg = guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), 0,
                                              guidance.w_to_gamma(w), S)(X, T)
        torch.testing.assert_close(via_cfg, via_cg, atol=1e-9, rtol=1e-7)


def test_classifier_guidance_per_sample_labels():
    y = torch.tensor([0, 1, 2, 1] * 16)
    guided = guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), y, 1.0, S)(X, T)
    torch.testing.assert_close(guided, MIX.eps_fn(S, y=y)(X, T), atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("steps, eta", [(None, 1.0), (25, 0.0)])
@pytest.mark.parametrize("w", [-0.5, 1.0, 3.0])
def test_cfg_sampling_with_exact_eps_is_classifier_guidance_sampling_with_gamma_one_plus_w(w, steps, eta):
    """Against the exact oracle at w != 0: with the exact denoisers, CFG's implicit classifier is the exact
    noise-aware posterior, so sampling with cfg(w) and with classifier guidance (gamma = 1 + w, the exact
    log p(y | x_t) through autograd) gives the same points from the same noise, DDPM and DDIM alike."""
    s = diffusion.make_schedule("linear", 100)
    run = lambda fn: diffusion.sample(fn, (400, 2), s, steps=steps, eta=eta, dtype=torch.float64,
                                      generator=torch.Generator().manual_seed(3))
    via_cfg = run(guidance.cfg(MIX.eps_fn(s, y=2), MIX.eps_fn(s), w))
    via_cg = run(guidance.classifier_guidance(MIX.eps_fn(s), MIX.log_posterior_fn(s), 2, 1 + w, s))
    torch.testing.assert_close(via_cfg, via_cg, rtol=1e-6, atol=1e-6)
    conditional = run(MIX.eps_fn(s, y=2))
    assert (via_cfg - conditional).abs().max() > 0.1  # the weight did something
    # guidance towards class 2 (w > 0) makes the samples more surely class 2 than the conditional's,
    # interpolating towards the unconditional (w < 0) less surely
    sure = lambda x: float(MIX.posterior(x)[:, 2].mean())
    assert (sure(via_cfg) > sure(conditional)) == (w > 0)


def test_guided_sampling_at_w_zero_gives_the_conditional():
    g = torch.Generator().manual_seed(3)
    eps_fn = guidance.cfg(MIX.eps_fn(S, y=2), MIX.eps_fn(S), 0.0)
    out = diffusion.sample(eps_fn, (2000, 2), S, steps=50, eta=1.0, generator=g)
    ref, _ = MIX.sample(2000, y=2, generator=g)
    ref2, _ = MIX.sample(2000, y=2, generator=g)
    assert sliced_wasserstein(out, ref) < 2 * sliced_wasserstein(ref, ref2) + 0.03


def test_weight_conversions():
    assert guidance.w_to_gamma(0.0) == 1.0 and guidance.gamma_to_w(1.0) == 0.0
    assert guidance.w_to_guidance_scale(3.0) == 4.0 and guidance.guidance_scale_to_w(7.5) == 6.5
    assert guidance.w_to_gamma(-1.0) == 0.0


@pytest.mark.parametrize("w", [float("nan"), float("inf"), -1.5, "2", None, True])
def test_cfg_rejects_bad_weights(w):
    with pytest.raises(ValueError, match="w must"):
        guidance.cfg(MIX.eps_fn(S, 0), MIX.eps_fn(S), w)


@pytest.mark.parametrize("gamma", [float("nan"), -0.1, float("-inf")])
def test_classifier_guidance_rejects_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma must"):
        guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), 0, gamma, S)


def test_classifier_guidance_rejects_bad_labels_and_schedule():
    for y in [3, -1, torch.tensor([0, 5])]:
        guided = guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), y, 1.0, S)
        with pytest.raises(ValueError, match="y must"):
            guided(X[:2], T[:2])
    with pytest.raises(ValueError, match="y must be an int or a 1-D long"):
        guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), torch.tensor([0.5]), 1.0, S)
    short = diffusion.make_schedule("linear", 100)
    guided = guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), 0, 1.0, short)
    with pytest.raises(ValueError, match="t must lie in 0..99"):
        guided(X[:2], torch.tensor([500, 900]))


def test_model_helpers_batch_cfg_like_cfg():
    class Toy(torch.nn.Module):  # eps depends on the label, so a swapped label would show
        def forward(self, x, t, y):
            return x * (y[:, None].float() + 1) + t[:, None].float() / 1000

    model, x, t = Toy(), torch.randn(6, 2), torch.full((6,), 7)
    expected = guidance.cfg(guidance.model_eps_fn(model, 1, 3), guidance.model_eps_fn(model, 3, 3), 2.0)(x, t)
    torch.testing.assert_close(guidance.model_cfg_eps_fn(model, 1, 2.0, 3)(x, t), expected)
    with pytest.raises(ValueError, match="y must lie in 0..2"):
        guidance.model_cfg_eps_fn(model, 3, 2.0, 3)(x, t)
    with pytest.raises(ValueError, match="y must lie in 0..3"):
        guidance.model_eps_fn(model, 4, 3)(x, t)


def test_drop_labels_rate_and_values():
    y = torch.randint(0, 3, (20_000,), generator=torch.Generator().manual_seed(0))
    out = guidance.drop_labels(y, 0.15, 3, generator=torch.Generator().manual_seed(1))
    dropped = out == 3
    assert abs(dropped.double().mean().item() - 0.15) < 4 * math.sqrt(0.15 * 0.85 / 20_000)
    assert torch.equal(out[~dropped], y[~dropped])  # kept labels are untouched
    assert torch.equal(guidance.drop_labels(y, 0.0, 3), y)
    assert (guidance.drop_labels(y, 1.0, 3) == 3).all()


@pytest.mark.parametrize("bad", [dict(p_uncond=1.5), dict(p_uncond=float("nan")), dict(null_label=0),
                                 dict(y=torch.tensor([0, 4])), dict(y=torch.tensor([0.0, 1.0]))])
def test_drop_labels_rejects_bad_arguments(bad):
    args = dict(y=torch.tensor([0, 1, 2]), p_uncond=0.1, null_label=3) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        guidance.drop_labels(**args)


def test_classifier_log_prob_fn_is_the_log_softmax_of_the_logits():
    torch.manual_seed(0)
    clf = torch.nn.Linear(2, 3)
    fn = guidance.classifier_log_prob_fn(lambda x, t: clf(x))
    x = torch.randn(5, 2)
    torch.testing.assert_close(fn(x, torch.zeros(5, dtype=torch.long)), torch.log_softmax(clf(x), dim=1))


# --- the implicit classifier of CFG (Ho & Salimans 2021, sec. 3.2) ------------------------

ANISO = toy.anisotropic()


def _aniso_points(n: int = 300, seed: int = 0) -> torch.Tensor:
    return ANISO.sample(n, generator=torch.Generator().manual_seed(seed))[0].double()


@pytest.mark.parametrize("t", [5, 100, 400, 900])
@pytest.mark.parametrize("y", [0, 2])
def test_implicit_classifier_of_exact_denoisers_is_the_exact_posterior_gradient(t, y):
    x, tt = 2 * _aniso_points(200) / 3, torch.full((200,), t)
    ours = guidance.implicit_classifier_grad(ANISO.eps_fn(S, y), ANISO.eps_fn(S), x, tt, S)
    exact = guidance.classifier_log_prob_grad(ANISO.log_posterior_fn(S), x, tt, y)
    torch.testing.assert_close(ours, exact, rtol=1e-8, atol=1e-8)


def test_implicit_classifier_through_the_model_interface():
    oracle, x, tt = toy.OracleDenoiser(ANISO, S), _aniso_points(50), torch.full((50,), 250)
    via_model = guidance.implicit_classifier_grad(guidance.model_eps_fn(oracle, 1, 3), guidance.model_eps_fn(oracle, 3, 3),
                                         x, tt, S)
    exact = guidance.classifier_log_prob_grad(ANISO.log_posterior_fn(S), x, tt, 1)
    torch.testing.assert_close(via_model, exact, rtol=1e-8, atol=1e-8)
    with pytest.raises(ValueError, match="t must"):
        guidance.implicit_classifier_grad(ANISO.eps_fn(S, 1), ANISO.eps_fn(S), x, torch.full((50,), 1000), S)


def test_implicit_classifier_on_images_is_what_cfg_adds_to_the_denoised_guess():
    # lesson 03, section 6: x0_hat(w) = x0_hat(0) + w sigma_t^2 / sqrt(abar_t) * grad, per image and per t
    from course_lib.unet import ConditionalUNet

    torch.manual_seed(0)
    net = ConditionalUNet(num_classes=10, T=1000, base_channels=8, emb_dim=16).eval()
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t, y, w = torch.tensor([5, 100, 400, 400, 700, 999]), torch.tensor([0, 3, 3, 7, 9, 1]), 2.5
    grad = guidance.implicit_classifier_grad(guidance.model_eps_fn(net, y, 10), guidance.model_eps_fn(net, 10, 10), x, t, S)
    assert grad.shape == x.shape
    sigma, root_abar = S.sigmas[t].float()[:, None, None, None], S.alpha_bars[t].sqrt().float()[:, None, None, None]
    with torch.no_grad():
        x0_hat = {v: (x - sigma * guidance.model_cfg_eps_fn(net, y, v, 10)(x, t)) / root_abar for v in (0.0, w)}
    torch.testing.assert_close(x0_hat[w], x0_hat[0.0] + w * sigma**2 / root_abar * grad, rtol=1e-4, atol=1e-3)


# --- guidance since 2022: interval, autoguidance, compose ---------------------------------------

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


def test_compose_one_term_is_cfg_and_gammas_add():
    for w in [-1.0, 0.0, 1.5, 6.0]:
        torch.testing.assert_close(guidance.compose(UNCOND, [(COND, 1 + w)])(X, T),
                                   guidance.cfg(COND, UNCOND, w)(X, T))
    torch.testing.assert_close(guidance.compose(UNCOND, [])(X, T), UNCOND(X, T))
    other = MIX.eps_fn(S, y=2)
    expected = UNCOND(X, T) + 1.5 * (COND(X, T) - UNCOND(X, T)) - 0.5 * (other(X, T) - UNCOND(X, T))
    torch.testing.assert_close(guidance.compose(UNCOND, [(COND, 1.5), (other, -0.5)])(X, T), expected)


def test_compose_at_clean_end_is_score_of_weighted_product():
    """At t = 0 (sigma_0 -> score) the composed eps is -sigma_0 times the score of
    p_u^(1 - gamma_1 - gamma_2) p_1^gamma_1 p_2^gamma_2, here checked with the exact scores of t = 0's noised law."""
    t0 = torch.zeros(X.shape[0], dtype=torch.long)
    noised = MIX.noised(float(S.alpha_bars[0]))
    score = 0.2 * noised.score(X) + 1.5 * noised.score(X, 1) - 0.7 * noised.score(X, 2)
    eps = guidance.compose(UNCOND, [(COND, 1.5), (MIX.eps_fn(S, y=2), -0.7)])(X, t0)
    torch.testing.assert_close(eps, -S.sigmas[0] * score)


@pytest.mark.parametrize("call, name", [
    (lambda: guidance.interval(COND, UNCOND, float("nan"), 3), "t_lo"),
    (lambda: guidance.interval(COND, UNCOND, 0, "high"), "t_hi"),
    (lambda: guidance.interval(COND, 3.0, 0, 10), "guided_fn and plain_fn"),
    (lambda: guidance.autoguidance(COND, UNCOND, float("inf")), "w"),
    (lambda: guidance.autoguidance(COND, UNCOND, -2.0), "w"),
    (lambda: guidance.autoguidance(None, UNCOND, 1.0), "good_fn and bad_fn"),
    (lambda: guidance.compose(UNCOND, [(COND, float("nan"))]), "terms[0] gamma"),
    (lambda: guidance.compose(UNCOND, [COND]), "terms[0]"),
    (lambda: guidance.compose(UNCOND, COND), "terms"),
    (lambda: guidance.compose("u", []), "uncond_fn"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match="^" + name.replace("[", r"\[").replace("]", r"\]")):
        call()


# --- the edges of the arguments: tensors for numbers, one bad clause at a time ---------------------


def test_weight_conversions_reject_weights_below_their_range():
    for call, name in [(guidance.w_to_gamma, "w"), (guidance.w_to_guidance_scale, "w"),
                       (guidance.gamma_to_w, "gamma"), (guidance.guidance_scale_to_w, "guidance_scale")]:
        low = -1.0 if name == "w" else 0.0
        assert call(low) == (low + 1 if name == "w" else low - 1)        # the end of the range is allowed
        with pytest.raises(ValueError, match=f"^{name} must be a finite number >= {low:g}"):
            call(low - 0.5)
        with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
            call(float("nan"))


def test_one_element_tensors_are_numbers_for_weights_and_window_ends():
    cond, uncond = MIX.eps_fn(S, y=1), MIX.eps_fn(S)
    torch.testing.assert_close(guidance.cfg(cond, uncond, torch.tensor(2.0))(X, T), guidance.cfg(cond, uncond, 2.0)(X, T))
    with pytest.raises(ValueError, match="w must"):
        guidance.cfg(cond, uncond, torch.tensor([1.0, 2.0]))
    guided = guidance.cfg(cond, uncond, 2.0)
    torch.testing.assert_close(guidance.interval(guided, cond, torch.tensor(200), torch.tensor(600))(X, T),
                               guidance.interval(guided, cond, 200, 600)(X, T))
    with pytest.raises(ValueError, match="t_lo"):
        guidance.interval(guided, cond, torch.tensor([1, 2]), 600)
    torch.testing.assert_close(guidance.compose(uncond, [(cond, torch.tensor(1.5))])(X, T),
                               guidance.compose(uncond, [(cond, 1.5)])(X, T))
    with pytest.raises(ValueError, match="terms\\[0\\] gamma"):
        guidance.compose(uncond, [(cond, torch.tensor([1.0, 2.0]))])


def test_autoguidance_at_w_one_extrapolates():
    bad = MIX.broadened(0.5).eps_fn(S, y=1)
    torch.testing.assert_close(guidance.autoguidance(COND, bad, 1.0)(X, T), 2 * COND(X, T) - bad(X, T))


@pytest.mark.parametrize("call, match", [
    (lambda: guidance.compose(UNCOND, [(COND, 1.0, 2.0)]), r"terms\[0\] must be a pair"),
    (lambda: guidance.compose(UNCOND, [(COND, True)]), r"terms\[0\] gamma"),
    (lambda: guidance.drop_labels([0, 1], 0.5, 3), "y must be a 1-D long tensor"),
    (lambda: guidance.drop_labels(torch.tensor([0, 1]), 0.5, True), "null_label"),
    (lambda: validate.labels(torch.tensor([0, 1]), 3, 3), r"one label per sample \(3\), got 2"),
    (lambda: guidance.classifier_log_prob_grad(lambda x, t: x.sum(1), X[:4], T[:4], 0), "log_prob_fn must return"),
    (lambda: guidance.classifier_log_prob_grad(lambda x, t: torch.zeros(5, 3) + x.sum(), X[:4], T[:4], 0),
     "log_prob_fn must return"),
    (lambda: guidance.classifier_guidance(MIX.eps_fn(S), MIX.log_posterior_fn(S), 0, 1.0, S)(X[:4], T[:3]),
     "one entry per sample"),
])
def test_bad_arguments_one_clause_at_a_time(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_drop_labels_with_one_class():
    y = torch.zeros(1000, dtype=torch.long)
    out = guidance.drop_labels(y, 0.5, 1, generator=torch.Generator().manual_seed(0))
    assert set(out.tolist()) == {0, 1}


def test_classifier_log_prob_fn_passes_the_time_on():
    fn = guidance.classifier_log_prob_fn(lambda x, t: torch.stack([x[:, 0], t.double()], 1))
    t = torch.tensor([0, 5])
    torch.testing.assert_close(fn(X[:2], t), torch.log_softmax(torch.stack([X[:2, 0], t.double()], 1), dim=1))


def test_model_cfg_checks_its_weight():
    model = lambda x, t, y: x * (y[:, None].float() + 1)
    torch.testing.assert_close(guidance.model_cfg_eps_fn(model, 1, -1.0, 3)(X[:4].float(), T[:4]), X[:4].float() * 4)
    with pytest.raises(ValueError, match="^w must be a finite number >= -1"):
        guidance.model_cfg_eps_fn(model, 1, -1.5, 3)


def test_classifier_guidance_checks_t_itself():
    """Even when neither eps_fn nor the classifier looks at t, a t of the wrong length is refused."""
    weights = torch.tensor([[1.0, 0.0, -1.0], [0.5, 1.0, 0.0]], dtype=torch.float64)
    guided = guidance.classifier_guidance(lambda x, t: 0 * x, lambda x, t: torch.log_softmax(x @ weights, 1), 0, 1.0, S)
    with pytest.raises(ValueError, match="one entry per sample"):
        guided(X[:4], T[:3])


def _never_called(x, t):
    raise AssertionError("this eps function must not be evaluated")


def test_cfg_at_w_minus_one_evaluates_only_the_unconditional_function():
    """w = -1 is eps(x, null) alone: the conditional model is not run (one network evaluation)."""
    x, t = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(guidance.cfg(_never_called, lambda x, t: 2 * x, -1.0)(x, t), 2 * x)


def test_interval_with_every_sample_inside_evaluates_only_the_guided_function():
    x = torch.randn(3, 2)
    out = guidance.interval(lambda x, t: 2 * x, _never_called, 0, 10)(x, torch.tensor([0, 5, 10]))
    torch.testing.assert_close(out, 2 * x)


def test_drop_labels_refuses_a_negative_probability_and_names_its_arguments_exactly():
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"^p_uncond must be a finite number in 0\.\.1, got -0\.1$"):
        guidance.drop_labels(y, -0.1, 3)
    with pytest.raises(ValueError, match=r"^null_label must be an integer >= 1 \(the number of classes K\), got 0$"):
        guidance.drop_labels(y, 0.5, 0)


def test_drop_labels_drops_when_the_uniform_draw_is_strictly_below_p_uncond():
    """drop iff u < p_uncond (so P(drop) = p_uncond): a draw equal to p_uncond keeps its label."""
    u = torch.rand(3, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2])
    p = float(u[1])  # exactly the second draw, a float32 value
    expected = torch.where(u < p, torch.tensor(3), y)
    out = guidance.drop_labels(y, p, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, expected) and out[1] == 1
