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


RIGHT_AND_WRONG = [
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
