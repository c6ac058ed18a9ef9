"""Instant checks for the lessons' graded exercises (STYLE.md section 7).

Each ``check_<exercise>(fn, seed=0)`` calls a student's function on inputs chosen so
that the usual mistakes show (a sign error, ``w`` in place of ``1 + w``, a variance
in place of a standard deviation), compares it with the reference in ``course_lib``,
prints how far the answer is from it and raises ``AssertionError`` (with the largest
error and a hint) when it is too far. Graded cells call the check once with the
default seed; hidden tests call it again with other seeds. ``NotImplementedError``
from an unsolved stub passes through unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import diffusion, guidance, metrics, models, tilted, toy, train

TOLERANCE = 1e-5


def _report(name: str, error: float, reference: str, hint: str, tolerance: float = TOLERANCE) -> None:
    if not error <= tolerance:  # also catches NaN
        raise AssertionError(f"{name}: largest difference from {reference} is {error:.3g} (allowed {tolerance:g}). "
                             f"Hint: {hint}")
    print(f"✓ {name}: largest difference from {reference} is {error:.1e}")


def _as_tensor(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name} must return a torch tensor, got {type(value).__name__}")
    return value


def check_forward_noise(forward_noise: Callable, seed: int = 0) -> None:
    """Lesson 0: ``forward_noise(x0, alpha_bar, eps) = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps``
    (DDPM eq. 4) against :func:`course_lib.diffusion.q_sample`, at small, middle and large ``t``."""
    gen = torch.Generator().manual_seed(seed)
    schedule = diffusion.make_schedule("linear", T=1000)
    x0, eps = 3 * torch.randn(64, 2, generator=gen) + 1, torch.randn(64, 2, generator=gen)
    error = 0.0
    for t in (10, 250 + seed % 100, 900):
        ours = _as_tensor(forward_noise(x0, schedule.alpha_bars[t].item(), eps), "forward_noise")
        reference = diffusion.q_sample(x0, torch.full((64,), t), eps, schedule)
        error = max(error, (ours - reference).abs().max().item())
    _report("forward_noise", error, "diffusion.q_sample",
            "both terms take a square root: sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps")


def check_ddim_as_euler(ddim_as_euler: Callable, seed: int = 0) -> None:
    """Lesson 0: ``ddim_as_euler(x_t, eps, alpha_bar_t, alpha_bar_s)``, one Euler step of the
    probability-flow ODE in ``x_bar = x / sqrt(alpha_bar)``, ``sigma_bar = sqrt((1 - alpha_bar) / alpha_bar)``,
    against the deterministic :func:`course_lib.diffusion.ddim_step` (Song et al. 2021, eq. 12)."""
    gen = torch.Generator().manual_seed(seed)
    schedule = diffusion.make_schedule("linear", T=1000)
    x_t, eps = torch.randn(32, 2, generator=gen, dtype=torch.float64), torch.randn(32, 2, generator=gen,
                                                                                   dtype=torch.float64)
    error = 0.0
    for t, s in ((999, 949), (600, 550 - seed % 50), (150, 20)):
        ours = _as_tensor(ddim_as_euler(x_t, eps, schedule.alpha_bars[t].item(), schedule.alpha_bars[s].item()),
                          "ddim_as_euler")
        error = max(error, (ours - diffusion.ddim_step(x_t, eps, t, s, schedule, eta=0.0)).abs().max().item())
    _report("ddim_as_euler", error, "diffusion.ddim_step(eta=0)",
            "sigma_bar = sqrt((1 - alpha_bar) / alpha_bar), not sigma_t; step x_bar by (sigma_bar_s - sigma_bar_t) * eps "
            "and multiply back by sqrt(alpha_bar_s)")


def _tiny_cfg_model(seed: int, K: int = 3) -> models.ConditionalMLP:
    """A small conditional MLP with initial weights from ``seed`` (torch's global generator untouched)."""
    return train.seeded_init(seed, lambda: models.ConditionalMLP(num_classes=K, T=1000, width=16, depth=1)).eval()


def check_conditional_eps_fn(conditional_eps_fn: Callable, seed: int = 0) -> None:
    """Lesson 1: ``conditional_eps_fn(model, y)`` returns the sampler's ``eps_fn(x, t)`` with the
    label fixed, against :func:`course_lib.guidance.model_eps_fn`, for every label and the null label."""
    K = 3
    model = _tiny_cfg_model(seed, K)
    gen = torch.Generator().manual_seed(seed)
    x, t = torch.randn(40, 2, generator=gen), torch.randint(1000, (40,), generator=gen)
    error = 0.0
    with torch.no_grad():
        for y in range(K + 1):
            eps_fn = conditional_eps_fn(model, y)
            if not callable(eps_fn):
                raise AssertionError(f"conditional_eps_fn must return a function eps_fn(x, t), got {eps_fn!r}")
            ours = _as_tensor(eps_fn(x, t), "the eps_fn from conditional_eps_fn")
            error = max(error, (ours - guidance.model_eps_fn(model, y, K)(x, t)).abs().max().item())
    _report("conditional_eps_fn", error, "guidance.model_eps_fn",
            "call model(x, t, labels) with one label per point: torch.full((x.shape[0],), y)")


def check_drop_labels(drop_labels: Callable, seed: int = 0) -> None:
    """Lesson 1: ``drop_labels(y, p_uncond, null_label, generator)`` replaces each label by
    ``null_label`` with probability ``p_uncond``, independently, and leaves the others alone.
    Checked by its statistics (any way of drawing the coin flips is right): nothing dropped
    at ``p = 0``, everything at ``p = 1``, and the share dropped at ``p = 0.15`` within five
    standard errors on 100,000 labels."""
    K, n = 10, 100_000
    y = torch.randint(K, (n,), generator=torch.Generator().manual_seed(seed))
    for p in (0.0, 1.0, 0.15):
        out = _as_tensor(drop_labels(y.clone(), p, K, torch.Generator().manual_seed(seed + 1)), "drop_labels")
        if out.shape != y.shape:
            raise AssertionError(f"drop_labels must return one label per input label {tuple(y.shape)}, "
                                 f"got shape {tuple(out.shape)}")
        kept = out != K
        if not torch.equal(out[kept], y[kept]):
            raise AssertionError("drop_labels changed a label to something other than the null label K")
        share = 1 - kept.double().mean().item()
        allowed = 5 * (p * (1 - p) / n) ** 0.5
        _report(f"drop_labels (p_uncond = {p:g}): share dropped {share:.4f}", abs(share - p),
                f"p_uncond = {p:g}", "drop a label when a uniform draw falls below p_uncond", allowed)


def check_grad_log_classifier(grad_log_classifier: Callable, seed: int = 0) -> None:
    """Lesson 2: ``grad_log_classifier(log_prob_fn, x, t, y)`` = ``grad_x log p(y | x_t)`` by
    autograd, against the closed form ``score(x_t | y) - score(x_t)`` of the lessons' mixture
    (Bayes' rule on scores), for a different label at every point."""
    mixture, schedule = toy.anisotropic(), diffusion.make_schedule("linear", T=1000)
    gen = torch.Generator().manual_seed(seed)
    t = 300
    noised = mixture.noised(schedule.alpha_bars[t].item())
    x, _ = noised.sample(200, generator=gen)
    x = x.double()
    y = torch.randint(mixture.num_classes, (200,), generator=gen)
    ours = _as_tensor(grad_log_classifier(mixture.log_posterior_fn(schedule), x, torch.full((200,), t), y),
                      "grad_log_classifier")
    exact = torch.stack([noised.score(x[i:i + 1], int(y[i])) - noised.score(x[i:i + 1]) for i in range(200)])[:, 0]
    _report("grad_log_classifier", (ours - exact).abs().max().item(), "score(x_t | y) - score(x_t)",
            "pick column y of log_prob_fn(x, t) for each point, sum, and differentiate with respect to x", 1e-6)


def check_guided_eps(guided_eps: Callable, seed: int = 0) -> None:
    """Lesson 2: ``guided_eps(eps, grad_log_p_y, sigma_t, gamma) = eps - gamma sigma_t grad_log_p_y``
    (DESIGN.md section 2; Dhariwal & Nichol 2021), at ``gamma = 0, 1, 3`` and several ``sigma_t``."""
    gen = torch.Generator().manual_seed(seed)
    eps, grad = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    error = 0.0
    for gamma in (0.0, 1.0, 3.0):
        for sigma_t in (0.1, 0.7, 1.0):
            ours = _as_tensor(guided_eps(eps, grad, sigma_t, gamma), "guided_eps")
            error = max(error, (ours - (eps - gamma * sigma_t * grad)).abs().max().item())
    _report("guided_eps", error, "eps - gamma * sigma_t * grad log p(y | x_t)",
            "the score is -eps / sigma_t, so adding gamma * grad to the score subtracts gamma * sigma_t * grad from eps")


def check_implicit_grad(implicit_grad: Callable, seed: int = 0) -> None:
    """Lesson 3: ``implicit_grad(model, x, t, y, schedule) = (eps(x_t, null) - eps(x_t, y)) / sigma_t``
    against :func:`course_lib.tilted.implicit_classifier_grad`, with a different ``t`` at every point."""
    K = 3
    model = _tiny_cfg_model(seed, K)
    schedule = diffusion.make_schedule("linear", T=1000)
    gen = torch.Generator().manual_seed(seed)
    x, t = torch.randn(40, 2, generator=gen), torch.randint(1, 1000, (40,), generator=gen)
    error = 0.0
    for y in range(K):
        ours = _as_tensor(implicit_grad(model, x, t, y, schedule), "implicit_grad")
        with torch.no_grad():
            reference = tilted.implicit_classifier_grad(guidance.model_eps_fn(model, y, K),
                                                        guidance.model_eps_fn(model, K, K), x, t, schedule)
        error = max(error, (ours - reference).abs().max().item())
    _report("implicit_grad", error, "tilted.implicit_classifier_grad",
            "eps(x_t, null) minus eps(x_t, y), divided by each point's own sigma_t = schedule.sigmas[t]")


def check_cfg_eps(cfg_eps: Callable, seed: int = 0) -> None:
    """Lesson 3: ``cfg_eps(eps_cond, eps_uncond, w) = (1 + w) eps_cond - w eps_uncond`` (Ho &
    Salimans 2021, eq. 6) at ``w = -1`` (unconditional), ``0`` (conditional), ``0.5`` and ``3``."""
    gen = torch.Generator().manual_seed(seed)
    eps_c, eps_u = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    error = 0.0
    for w in (-1.0, 0.0, 0.5, 3.0):
        ours = _as_tensor(cfg_eps(eps_c, eps_u, w), "cfg_eps")
        error = max(error, (ours - ((1 + w) * eps_c - w * eps_u)).abs().max().item())
    _report("cfg_eps", error, "(1 + w) eps_cond - w eps_uncond",
            "w = -1 must give eps_uncond and w = 0 eps_cond; the weights sum to 1")


def check_knn_precision(knn_precision: Callable, seed: int = 0) -> None:
    """Lesson 4: ``knn_precision(real, fake, k)``, the share of ``fake`` inside the union of the
    k-NN balls of ``real`` (Kynkaanniemi et al. 2019), against :func:`course_lib.metrics.precision_recall`."""
    gen = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(300, 2, generator=gen), 0.5 * torch.randn(200, 2, generator=gen) + 1.0
    error = 0.0
    for k in (1, 5):
        precision, recall = metrics.precision_recall(real, fake, k=k)
        ours = (knn_precision(real, fake, k), knn_precision(fake, real, k))
        if not all(isinstance(v, float) for v in ours):
            raise AssertionError(f"knn_precision must return a float, got {type(ours[0]).__name__}")
        error = max(error, abs(ours[0] - precision), abs(ours[1] - recall))
    _report("knn_precision", error, "metrics.precision_recall",
            "a ball's radius is the distance to the k-th nearest *other* real point (kthvalue(k + 1))")
