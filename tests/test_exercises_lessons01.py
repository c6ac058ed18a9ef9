"""Lessons 00 and 01: the graded exercises' references against closed forms, and the results
the end-of-lesson exercises tell the student to expect."""

import torch

from test_checks import assert_right_and_wrong

from course_lib import diffusion, toy
from course_lib.exercises import diffusion_refresher as lesson00
from course_lib.exercises.core import difference


def test_gaussian_eps_check_accepts_the_reference_and_rejects_a_variance_for_a_standard_deviation():
    def wrong(x_t, alpha_bar, mean, cov):
        return (1 - alpha_bar) * lesson00._gaussian_eps(x_t, alpha_bar, mean, cov) / (1 - alpha_bar) ** 0.5

    assert_right_and_wrong("gaussian_eps", lesson00._gaussian_eps, wrong)


def test_renoise_check_rejects_a_jump_from_x0_and_a_wrong_noise_variance():
    def from_x0(x_s, a_s, a_t, eps):                     # treats x_s as if it were clean data
        return a_t**0.5 * x_s + (1 - a_t) ** 0.5 * eps

    def wrong_variance(x_s, a_s, a_t, eps):              # right scaling, the direct jump's noise
        return (a_t / a_s) ** 0.5 * x_s + (1 - a_t) ** 0.5 * eps

    assert_right_and_wrong("renoise", lesson00._renoise, from_x0)
    assert_right_and_wrong("renoise", lesson00._renoise, wrong_variance)


def test_renoise_composes_with_q_sample_into_the_forward_law():
    """x_0 -> s by q_sample, then s -> t by the reference: the noise relative to x_0 is standard normal."""
    schedule, gen = diffusion.make_schedule("linear", T=1000), torch.Generator().manual_seed(0)
    x0 = torch.zeros(200_000, 2, dtype=torch.float64)
    s, t = 100, 400
    x_s = diffusion.q_sample(x0, torch.full((len(x0),), s), torch.randn(x0.shape, generator=gen, dtype=torch.float64),
                             schedule)
    x_t = lesson00._renoise(x_s, schedule.alpha_bars[s].item(), schedule.alpha_bars[t].item(),
                            torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    left = x_t / schedule.sigmas[t].item()
    assert left.mean(0).abs().max() < 0.01 and (left.std(0) - 1).abs().max() < 0.01


def test_gaussian_eps_reference_is_the_closed_form():
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x, t = torch.randn(20, 2, dtype=torch.float64), 400
    a = schedule.alpha_bars[t].item()
    cov_t = a * mixture.covs[1] + (1 - a) * torch.eye(2, dtype=torch.float64)
    closed = (1 - a) ** 0.5 * torch.linalg.solve(cov_t, (x - a**0.5 * mixture.means[1]).T).T
    assert torch.allclose(lesson00._gaussian_eps(x, a, mixture.means[1], mixture.covs[1]), closed)
    assert torch.allclose(lesson00._gaussian_eps(x, a, mixture.means[1], mixture.covs[1]),
                          mixture.eps_fn(schedule, y=1)(x, torch.full((20,), t)))


def test_gaussian_eps_cases_catch_a_missing_noise_term():
    """A typical mistake (the covariance of x_t without the added noise) fails public and hidden cases."""
    exercise = lesson00.EXERCISES[[e.name for e in lesson00.EXERCISES].index("gaussian_eps")]

    def wrong(x_t, alpha_bar, mean, cov):
        return ((1 - alpha_bar) ** 0.5 * torch.linalg.solve(alpha_bar * cov, (x_t.to(cov.dtype) - alpha_bar**0.5 * mean).T)).T

    gen = torch.Generator().manual_seed(0)
    for cases in (exercise.public_cases(gen), exercise.hidden_cases(gen)):
        assert max(difference(wrong(*args).to(args[0].dtype), exercise.reference(*args), "x") for args in cases) > 1e-2


def test_expected_eta_sweep_matches_the_lesson():
    rows = lesson00.expected_eta_sweep()
    assert all(abs(rows[50, eta][0] - rows[50, 0.0][0]) < 0.02 for eta in (0.5, 1.0))
    assert rows[20, 1.0][0] > max(rows[20, 0.0][0], rows[20, 0.5][0])
    assert rows[20, 1.0][1] < rows[20, 0.0][1]


def test_expected_schedule_rows_matches_the_lesson():
    linear, cosine = lesson00.expected_schedule_rows("linear"), lesson00.expected_schedule_rows("cosine")
    for steps in ("DDIM, 20 steps", "DDIM, 10 steps"):
        assert cosine[steps][1] > linear[steps][1]
    for name in ("DDPM, 1000 steps", "DDIM, 50 steps"):
        assert abs(cosine[name][0] - linear[name][0]) < 0.02


def test_expected_identity_step_in_the_stated_range():
    assert 450 <= lesson00.expected_identity_step() <= 500


# --------------------------------------------------------------------------- lesson 01

from course_lib.exercises import explicit_conditioning as lesson01  # noqa: E402


def _exercise(module, name):
    return next(e for e in module.EXERCISES if e.name == name)


def test_null_eps_reference_is_the_exact_unconditional_denoiser():
    """Bayes' rule on the per-label denoisers gives the oracle of the mixture, on every case the grader uses."""
    exercise = _exercise(lesson01, "null_eps")
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    x = mixture.sample(64, generator=torch.Generator().manual_seed(0))[0].double()
    for t in (0, 300, 999):
        args = lesson01._null_case(mixture, x, t)
        assert torch.allclose(exercise.reference(*args), mixture.eps_fn(schedule)(x, torch.full((64,), t)), atol=1e-10)
    gen = torch.Generator().manual_seed(1)
    assert all(torch.isfinite(exercise.reference(*args)).all() for args in exercise.public_cases(gen) + exercise.hidden_cases(gen))


def test_null_eps_check_accepts_the_reference_and_rejects_unweighted_classes():
    def wrong(eps, log_lik, weights):
        return (torch.softmax(log_lik, dim=1).T[..., None] * eps).sum(0)

    assert_right_and_wrong("null_eps", lesson01._null_eps, wrong)


def test_null_eps_cases_catch_the_usual_mistakes():
    """The class weights left out, or the likelihoods exponentiated directly (underflow far from the data)."""
    exercise = _exercise(lesson01, "null_eps")

    def no_weights(eps, log_lik, weights):
        return (torch.softmax(log_lik, dim=1).T[..., None] * eps).sum(0)

    def underflows(eps, log_lik, weights):
        p = weights[None] * log_lik.exp()
        return ((p / p.sum(1, keepdim=True)).T[..., None] * eps).sum(0)

    gen = torch.Generator().manual_seed(2)
    for cases in (exercise.public_cases(gen), exercise.hidden_cases(gen)):
        for wrong in (no_weights, underflows):
            assert max(exercise.error(wrong(*args), args) for args in cases) > exercise.tolerance


def test_expected_self_consistency_matches_the_lesson():
    errors = lesson01.expected_self_consistency(ts=(0, 50, 300, 700))
    assert errors[0] == max(errors.values())
    assert errors[300] < errors[0] / 10


def test_expected_rare_sweep_matches_the_lesson():
    rows = lesson01.expected_rare_sweep(fractions=(0.2, 0.006))
    balanced = rows[1.0]
    assert abs(rows[0.2][1] - balanced[1]) < 0.01
    assert rows[0.006][1] > 2 * balanced[1]
    assert rows[0.2][2] > 3 * balanced[2] and rows[0.006][2] > rows[0.2][2]


def test_expected_dropout_matches_the_lesson():
    fits = lesson01.expected_dropout()
    null = 3
    assert fits[0.0][null][0] > 100 * fits[0.0][null][1]
    assert fits[0.5][null][0] <= fits[0.2][null][0]
    assert sum(fits[0.5][k][0] for k in range(3)) > sum(fits[0.2][k][0] for k in range(3))
