"""The Langevin corrector: its step-size rule, and that with an exact noised score it samples the target."""

import math

import pytest
import torch

from course_lib import diffusion, langevin, toy
from course_lib.sample_metrics import sliced_wasserstein

MIX = toy.GaussianMixture2D([[0.0, 0.0], [2.2, -0.4], [-1.8, 1.5]],
                            [[[0.3, 0.1], [0.1, 0.2]], [[0.05, 0.0], [0.0, 0.4]], [[0.2, 0.0], [0.0, 0.05]]],
                            [0.6, 0.15, 0.25])
S = diffusion.make_schedule("linear", 1000)


def test_snr_rule_makes_drift_r_times_the_noise():
    g = torch.Generator().manual_seed(0)
    score, z = torch.randn(64, 2, generator=g) * 7.0, torch.randn(64, 2, generator=g)
    for r in [0.05, 0.16, 1.0]:
        step = langevin.snr_step_size(score, z, r)
        drift = step * score.norm(dim=1).mean()
        noise = math.sqrt(2 * step) * z.norm(dim=1).mean()
        assert float(drift / noise) == pytest.approx(r, rel=1e-6)
    # for a score of size 1 / sigma the step shrinks like sigma^2
    assert langevin.snr_step_size(score / 0.1, z, 0.16) == pytest.approx(0.01 * langevin.snr_step_size(score, z, 0.16))


def test_corrector_with_exact_score_samples_the_target():
    """The predictor uses a wrong model (the mixture blurred by delta = 1) and lands far from the
    data; 10 corrector steps per level with the exact noised score bring it within 2.5x the noise
    floor (the SW distance between two exact sample sets of the same size)."""
    n = 2000
    target = MIX.sample(n, generator=torch.Generator().manual_seed(10))[0]
    floor = sliced_wasserstein(target, MIX.sample(n, generator=torch.Generator().manual_seed(20))[0])
    wrong = MIX.broadened(1.0).eps_fn(S)
    draws = {k: langevin.sample_pc(wrong, (n, 2), S, steps=50, corrector_steps=k, snr=0.3, eta=0.0,
                                   corrector_eps_fn=MIX.eps_fn(S), generator=torch.Generator().manual_seed(30))
             for k in (0, 10)}
    assert sliced_wasserstein(draws[0], target) > 2.5 * floor
    assert sliced_wasserstein(draws[10], target) < 2.5 * floor


def test_no_corrector_steps_is_the_plain_sampler():
    x_T = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    pc = langevin.sample_pc(MIX.eps_fn(S), (100, 2), S, steps=20, corrector_steps=0, eta=0.0, x_T=x_T)
    plain = diffusion.sample(MIX.eps_fn(S), (100, 2), S, steps=20, eta=0.0, x_T=x_T)
    torch.testing.assert_close(pc, plain)


def test_eps_fn_from_noised_score_is_the_exact_denoiser():
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    eps = langevin.eps_fn_from_noised_score(lambda x, a: MIX.noised(a).score(x), S)
    for step in [0, 300, 999]:
        t = torch.full((50,), step, dtype=torch.long)
        torch.testing.assert_close(eps(x, t), MIX.eps_fn(S)(x, t))


@pytest.mark.parametrize("call, name", [
    (lambda: langevin.snr_step_size(torch.ones(3, 2), torch.ones(3, 2), 0.0), "snr"),
    (lambda: langevin.snr_step_size(torch.zeros(3, 2), torch.ones(3, 2), 0.1), "score"),
    (lambda: langevin.snr_step_size(torch.ones(3, 2), torch.ones(4, 2), 0.1), "score and noise"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, corrector_steps=-1), "corrector_steps"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, snr=float("nan")), "snr"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=0), "steps"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, x_T=torch.zeros(3, 2)), "x_T"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, corrector_min_t=1.5), "^corrector_min_t must be"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, corrector_steps=True),
     "^corrector_steps must be an integer >= 0, got True"),
    (lambda: langevin.sample_pc(MIX.eps_fn(S), (4, 2), S, steps=5, progress=1), "^progress must be True or False"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_langevin_step_is_algorithm_5s_update():
    """x + e s + sqrt(2 e) z with z the generator's next normal draws and e the SNR rule's step."""
    g = torch.Generator().manual_seed(3)
    x, score = torch.randn(16, 2, generator=g, dtype=torch.float64), torch.randn(16, 2, generator=g, dtype=torch.float64)
    out = langevin.langevin_step(x, score, 0.2, torch.Generator().manual_seed(4))
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    e = 2 * (0.2 * z.norm(dim=1).mean() / score.norm(dim=1).mean()) ** 2
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x + e * score + torch.sqrt(2 * e) * z)


def test_eps_fn_from_noised_score_needs_one_t_per_batch():
    eps = langevin.eps_fn_from_noised_score(lambda x, a: MIX.noised(a).score(x), S)
    x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(eps(x[:1], torch.tensor([7])), MIX.eps_fn(S)(x[:1], torch.tensor([7])))
    with pytest.raises(ValueError, match="one time step for the whole batch"):
        eps(x, torch.tensor([7, 7, 8]))
    with pytest.raises(ValueError, match="one entry per sample"):
        eps(x, torch.tensor([7, 7]))


@pytest.mark.parametrize("call, name", [
    (lambda: langevin.snr_step_size(torch.ones(3, 2), torch.ones(3, 2), True), "snr"),
    (lambda: langevin.snr_step_size([1.0, 2.0], torch.ones(2), 0.1), "score and noise"),
    (lambda: langevin.snr_step_size(torch.ones(2), [1.0, 2.0], 0.1), "score and noise"),
])
def test_bad_arguments_one_clause_at_a_time(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_eps_fn_from_noised_score_returns_the_dtype_of_x():
    eps = langevin.eps_fn_from_noised_score(lambda x, a: MIX.noised(a).score(x), S)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert eps(x, torch.full((3,), 7)).dtype == torch.float32


def test_no_corrector_is_the_plain_sampler_bit_for_bit_and_takes_dtype_and_device():
    """One loop: with no corrector steps, sample_pc draws x_T and every step's noise as sample does."""
    for eta in (0.0, 0.7):
        pc = langevin.sample_pc(MIX.eps_fn(S), (50, 2), S, steps=12, corrector_steps=0, eta=eta,
                                generator=torch.Generator().manual_seed(5))
        plain = diffusion.sample(MIX.eps_fn(S), (50, 2), S, steps=12, eta=eta,
                                 generator=torch.Generator().manual_seed(5))
        assert torch.equal(pc, plain)
    out = langevin.sample_pc(MIX.eps_fn(S), (8, 2), S, steps=4, dtype=torch.float64, device="cpu",
                             generator=torch.Generator().manual_seed(6))
    assert out.dtype == torch.float64 and out.device.type == "cpu"


def test_corrector_runs_at_each_corrected_level_before_its_predictor_step():
    """corrector_min_t: levels below it take no Langevin step, so the corrector's eps function is
    called corrector_steps times at each level t >= corrector_min_t, with that level's t."""
    seen = []

    def corrector(x, t):
        seen.append(int(t[0]))
        return MIX.eps_fn(S)(x, t)

    langevin.sample_pc(MIX.eps_fn(S), (16, 2), S, steps=5, corrector_steps=2, corrector_eps_fn=corrector,
                       corrector_min_t=400, generator=torch.Generator().manual_seed(7))
    assert seen == [999, 999, 749, 749, 500, 500]


def test_langevin_step_keeps_the_dtype_of_x_for_a_float64_score():
    x = torch.zeros(4, 2)
    out = langevin.langevin_step(x, torch.ones(4, 2, dtype=torch.float64), 0.5,
                                 generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32


def test_snr_step_size_message_names_snr():
    with pytest.raises(ValueError, match=r"^snr must be a finite number > 0, got 0$"):
        langevin.snr_step_size(torch.ones(3, 2), torch.ones(3, 2), 0)
