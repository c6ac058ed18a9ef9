"""Every graded exercise: its checks accept a right answer and reject the usual mistake, on the
public cases (the instant check) and on hidden cases drawn from several seeds (the grader's);
an unsolved stub fails with NotImplementedError; malformed answers are named."""

import pytest
import torch

from course_lib import checks, exercises


def forward_noise(x0, alpha_bar, eps):
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps


def drop_labels(y, p_uncond, null_label, generator):
    drop = torch.rand(y.shape[0], generator=generator) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def grad_log_classifier(log_prob_fn, x, t, y):
    x = x.detach().requires_grad_(True)
    chosen = log_prob_fn(x, t)[torch.arange(len(x)), y].sum()
    return torch.autograd.grad(chosen, x)[0]


def cfg_eps(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def knn_precision(real, fake, k=5):
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    return (torch.cdist(fake, real) <= radii).any(dim=1).double().mean().item()


def ddim_as_euler(x_t, eps, alpha_bar_t, alpha_bar_s):
    sigma_bar_t, sigma_bar_s = ((1 - alpha_bar_t) / alpha_bar_t) ** 0.5, ((1 - alpha_bar_s) / alpha_bar_s) ** 0.5
    return alpha_bar_s**0.5 * (x_t / alpha_bar_t**0.5 + (sigma_bar_s - sigma_bar_t) * eps)


def conditional_eps_fn(model, y):
    return lambda x, t: model(x, t, torch.full((x.shape[0],), y))


def guided_eps(eps, grad_log_p_y, sigma_t, gamma):
    return eps - gamma * sigma_t * grad_log_p_y


def implicit_grad(model, x, t, y, schedule):
    with torch.no_grad():
        null = torch.full_like(t, model.num_classes)
        eps_y, eps_null = model(x, t, torch.full_like(t, y)), model(x, t, null)
    return (eps_null - eps_y) / schedule.sigmas[t].float()[:, None]


RIGHT_AND_WRONG = [
    ("ddim_as_euler", ddim_as_euler,  # sigma_t in place of sigma_bar
     lambda x, e, a, b: b**0.5 * (x / a**0.5 + ((1 - b) ** 0.5 - (1 - a) ** 0.5) * e)),
    ("conditional_eps_fn", conditional_eps_fn,  # always the null label
     lambda model, y: lambda x, t: model(x, t, torch.full((x.shape[0],), model.num_classes))),
    ("guided_eps", guided_eps, lambda e, g, s, gamma: e + gamma * s * g),  # sign
    ("implicit_grad", implicit_grad,  # forgets sigma_t
     lambda model, x, t, y, schedule: implicit_grad(model, x, t, y, schedule) * schedule.sigmas[t].float()[:, None]),
    ("forward_noise", forward_noise, lambda x0, a, eps: a**0.5 * x0 + (1 - a) * eps),  # variance
    ("drop_labels", drop_labels,
     lambda y, p, K, g: torch.where(torch.rand(len(y), generator=g) > p, torch.full_like(y, K), y)),  # flipped
    ("grad_log_classifier", grad_log_classifier,
     lambda f, x, t, y: -grad_log_classifier(f, x, t, y)),  # sign
    ("cfg_eps", cfg_eps, lambda c, u, w: w * c - (w - 1) * u),  # w in place of 1 + w
    ("knn_precision", knn_precision,
     lambda real, fake, k=5: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k, dim=1).values)
     .any(dim=1).double().mean().item()),  # counts the point itself as its own neighbour
]


def assert_right_and_wrong(name, right, wrong, seeds=(0, 1, 2)):
    """``right`` passes the instant check and every hidden case of ``seeds``; ``wrong`` fails the
    instant check (lesson owners call this from their own tests for each new exercise)."""
    exercise = exercises.get(name)
    checks.check(name, right)  # raises AssertionError when too far
    for seed in seeds:
        for args in exercise.hidden_cases(torch.Generator().manual_seed(seed)):
            assert exercise.error(exercise.run(right, args), args) <= exercise.tolerance, (name, seed)
    with pytest.raises(AssertionError, match="Hint|must|changed"):
        checks.check(name, wrong)


@pytest.mark.parametrize("name, right, wrong", RIGHT_AND_WRONG, ids=[c[0] for c in RIGHT_AND_WRONG])
def test_check_accepts_the_reference_and_rejects_a_typical_mistake(name, right, wrong, capsys):
    assert_right_and_wrong(name, right, wrong)
    assert capsys.readouterr().out.startswith(f"✓ {name}: ")


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_an_unsolved_stub_fails_with_not_implemented(name):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"exercise {name}: write this function")

    with pytest.raises(NotImplementedError):
        checks.check(name, stub)


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_every_exercise_has_public_and_hidden_cases_and_a_hint(name):
    exercise = exercises.get(name)
    public = exercise.public_cases(torch.Generator().manual_seed(0))
    hidden = [exercise.hidden_cases(torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert public and hidden[0] and exercise.hint
    assert len(hidden[0]) == len(hidden[1])


def test_malformed_answers_are_named():
    with pytest.raises(AssertionError, match="must return a torch tensor"):
        checks.check("cfg_eps", lambda c, u, w: 0.0)
    with pytest.raises(AssertionError, match="shape"):
        checks.check("cfg_eps", lambda c, u, w: c[:1])
    with pytest.raises(AssertionError, match="Python number"):
        checks.check("knn_precision", lambda real, fake, k=5: torch.tensor(1.0))
    with pytest.raises(AssertionError, match="off by inf"):
        checks.check("cfg_eps", lambda c, u, w: c * float("nan"))
    with pytest.raises(KeyError, match="cfg_eps"):
        checks.check("no_such_exercise", cfg_eps)


def test_an_answer_that_changes_its_inputs_cannot_change_the_reference():
    def cheat(eps_cond, eps_uncond, w):
        eps_cond.zero_(), eps_uncond.zero_()
        return eps_cond

    with pytest.raises(AssertionError, match="Hint"):
        checks.check("cfg_eps", cheat)


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_hidden_cases_and_the_answer_runner_cross_a_process_boundary(name):
    """The grader torch.saves each exercise's ``call`` and hidden cases for its child process, and
    reads answers back with weights_only=True: the cases must pickle, ``call`` must be importable
    by name (no lambda), the reference's value must be made of tensors, numbers and tuples."""
    import io
    import pickle

    exercise = exercises.get(name)
    cases = exercise.hidden_cases(torch.Generator().manual_seed(5))
    torch.save({"call": exercise.call, "cases": cases}, io.BytesIO())
    assert pickle.loads(pickle.dumps(exercise.call)) is exercise.call
    if exercise.reference is not None:
        for args in cases:
            buffer = io.BytesIO()
            torch.save(exercise.reference(*args), buffer)
            buffer.seek(0)
            torch.load(buffer, weights_only=True)
