"""The exercise checks accept the lessons' reference answers and reject the usual mistakes."""

import pytest
import torch

from course_lib import checks


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
    (checks.check_ddim_as_euler, ddim_as_euler,  # sigma_t in place of sigma_bar
     lambda x, e, a, b: b**0.5 * (x / a**0.5 + ((1 - b) ** 0.5 - (1 - a) ** 0.5) * e)),
    (checks.check_conditional_eps_fn, conditional_eps_fn,  # always the null label
     lambda model, y: lambda x, t: model(x, t, torch.full((x.shape[0],), model.num_classes))),
    (checks.check_guided_eps, guided_eps, lambda e, g, s, gamma: e + gamma * s * g),  # sign
    (checks.check_implicit_grad, implicit_grad,  # forgets sigma_t
     lambda model, x, t, y, schedule: implicit_grad(model, x, t, y, schedule) * schedule.sigmas[t].float()[:, None]),
    (checks.check_forward_noise, forward_noise, lambda x0, a, eps: a**0.5 * x0 + (1 - a) * eps),  # variance
    (checks.check_drop_labels, drop_labels,
     lambda y, p, K, g: torch.where(torch.rand(len(y), generator=g) > p, torch.full_like(y, K), y)),  # flipped
    (checks.check_grad_log_classifier, grad_log_classifier,
     lambda f, x, t, y: -grad_log_classifier(f, x, t, y)),  # sign
    (checks.check_cfg_eps, cfg_eps, lambda c, u, w: w * c - (w - 1) * u),  # w in place of 1 + w
    (checks.check_knn_precision, knn_precision,
     lambda real, fake, k=5: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k, dim=1).values)
     .any(dim=1).double().mean().item()),  # counts the point itself as its own neighbour
]


@pytest.mark.parametrize("check, right, wrong", RIGHT_AND_WRONG, ids=[c[0].__name__ for c in RIGHT_AND_WRONG])
def test_check_accepts_the_reference_and_rejects_a_typical_mistake(check, right, wrong, capsys):
    for seed in (0, 1):
        check(right, seed=seed)
    assert capsys.readouterr().out.startswith("✓ ")
    with pytest.raises(AssertionError, match="Hint|must"):
        check(wrong)


@pytest.mark.parametrize("check", [c[0] for c in RIGHT_AND_WRONG], ids=[c[0].__name__ for c in RIGHT_AND_WRONG])
def test_an_unsolved_stub_fails_with_not_implemented(check):
    def stub(*args, **kwargs):
        raise NotImplementedError("exercise: write this function")

    with pytest.raises(NotImplementedError):
        check(stub)
