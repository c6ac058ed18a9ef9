"""Instructor half of the exercises of classifier_guidance: references, hidden cases, what each tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable

import torch

from course_lib import conditional, diffusion, guidance, pretrained, sample_metrics, toy, validate, widgets
from course_lib.exercises.classifier_guidance import _LINEAR, _classifier_case, rotated_cov
from .core import Grading


def _noised_logits(means: torch.Tensor, cov: torch.Tensor, weights: torch.Tensor,
                   alpha_bar: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact noise-aware classifier of a mixture whose classes share ``cov`` is a linear softmax:
    ``log p_t(k | x) = W_k . x + b_k + const(x)`` with ``C_t = a cov + (1 - a) I``,
    ``W_k = sqrt(a) C_t^-1 mu_k``, ``b_k = log pi_k - a mu_k^T C_t^-1 mu_k / 2``; returned relative to class 0."""
    a = float(alpha_bar)
    c_t = a * cov.double() + (1 - a) * torch.eye(cov.shape[0], dtype=torch.float64)
    solved = torch.linalg.solve(c_t, means.double().T).T                              # [K, 2]: C_t^-1 mu_k
    W = a**0.5 * solved
    b = weights.double().log() - 0.5 * a * (means.double() * solved).sum(1)
    return (W - W[:1]).to(means.dtype), (b - b[:1]).to(means.dtype)


def _logits_hidden(gen: torch.Generator) -> list[tuple]:
    ring = toy.ring(k=5)                                                                # isotropic, five classes
    K = 4
    means = 4 * torch.rand(K, 2, generator=gen, dtype=torch.float64) - 2
    weights = torch.rand(K, generator=gen, dtype=torch.float64) + 0.1
    cov = rotated_cov(torch.rand((), generator=gen).item() * math.pi, 1.2, 0.3)
    two = means[:2].clone()
    return [(ring.means.clone(), ring.covs[0].clone(), ring.weights.clone(), _LINEAR.alpha_bars[200].item()),
            (means, cov, weights / weights.sum(), 1.0),                                 # clean data
            (means, cov, weights / weights.sum(), _LINEAR.alpha_bars[999].item()),      # t = T - 1
            (two, cov, torch.tensor([0.9, 0.1], dtype=torch.float64), _LINEAR.alpha_bars[400].item()),  # two, unequal
            (means.float(), cov.float(), (weights / weights.sum()).float(), _LINEAR.alpha_bars[100].item())]  # float32


def _grad_from_logits(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad_x log softmax(model(x, t))[i, y_i]`` for every point ``i`` (the log-probability, not the logit)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        chosen = model(x, t).log_softmax(dim=1)[torch.arange(len(x)), y].sum()
        return torch.autograd.grad(chosen, x)[0]


def _classifier_hidden(gen: torch.Generator) -> list[tuple]:
    return [_classifier_case(gen, 5, 40, torch.randint(0, 1000, (40,), generator=gen)),     # five classes, t per point
            _classifier_case(gen, 3, 1, torch.tensor([999])),                               # batch of one, T - 1
            _classifier_case(gen, 3, 30, torch.full((30,), 0)),                             # t = 0
            _classifier_case(gen, 2, 30, torch.randint(0, 1000, (30,), generator=gen))]                 # two classes


def _guided_reference(eps: torch.Tensor, grad: torch.Tensor, sigma_t: float, gamma: float) -> torch.Tensor:
    """``eps_hat = eps - gamma sigma_t grad log p(y | x_t)``: the score ``-eps / sigma_t`` plus ``gamma`` times the
    classifier gradient, turned back into eps (Dhariwal & Nichol 2021, Algorithm 2 in eps form)."""
    return eps - gamma * sigma_t * grad


def _guided_hidden(gen: torch.Generator) -> list[tuple]:
    eps, grad = torch.randn(20, 2, generator=gen, dtype=torch.float64), torch.randn(20, 2, generator=gen,
                                                                                       dtype=torch.float64)
    sigma, gamma = 0.05 + torch.rand((), generator=gen).item(), 10 * torch.rand((), generator=gen).item()
    images = torch.randn(3, 1, 4, 4, generator=gen), torch.randn(3, 1, 4, 4, generator=gen)
    return [(eps, grad, sigma, gamma),
            (eps, grad, sigma, 0.0),                       # gamma = 0: the unconditional eps, untouched
            (eps[:1], grad[:1], _LINEAR.sigmas[999].item(), 10.0),  # batch of one at t = T - 1
            (eps, grad, _LINEAR.sigmas[0].item(), 2.0),     # t = 0: sigma_t = 0.01
            (*images, sigma, gamma)]                        # images, not points


def outside_contour(x: torch.Tensor, mixture: toy.GaussianMixture2D, y: int, mass: float = 0.95) -> torch.Tensor:
    """``[n]`` bool: which points lie outside the contour of class ``y``'s Gaussian that holds ``mass``
    of it (squared Mahalanobis distance above the chi-square quantile ``-2 log(1 - mass)``, 2 dof)."""
    if not 0 < mass < 1:
        raise ValueError(f"mass must lie strictly between 0 and 1, got {mass!r}")
    validate.labels(y, 1, mixture.num_classes)
    d = x.double() - mixture.means[y]
    return ((d @ torch.linalg.inv(mixture.covs[y])) * d).sum(1) > -2 * math.log(1 - mass)


def expected_window_shares(windows: Sequence[tuple[int, int]], *, gamma: float = 10.0, y: int = 1, n: int = 1000,
                           steps: int = 20, seed: int = 0) -> dict[tuple[int, int], float]:
    """Exercise "When does guidance push?": exact classifier guidance at ``gamma`` inside each window
    ``(t_lo, t_hi)`` and ``gamma = 1`` outside it (:func:`course_lib.guidance.interval`), on class ``y`` of
    ``toy.anisotropic()``, DDIM ``steps`` from the lesson's noise ``seed``. Returns, per window, the share of
    samples outside class ``y``'s 95% contour."""
    mixture = toy.anisotropic()
    eps_u, log_post = mixture.eps_fn(_LINEAR), mixture.log_posterior_fn(_LINEAR)
    plain = guidance.classifier_guidance(eps_u, log_post, y, 1.0, _LINEAR)
    strong = guidance.classifier_guidance(eps_u, log_post, y, gamma, _LINEAR)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    out = {}
    for t_lo, t_hi in windows:
        x0 = diffusion.sample(guidance.interval(strong, plain, t_lo, t_hi), (n, 2), _LINEAR, steps=steps, eta=0.0,
                              x_T=x_T)
        out[(t_lo, t_hi)] = float(outside_contour(x0, mixture, y).double().mean())
    return out


def expected_clean_guidance(classifier: torch.nn.Module, gammas: Sequence[float] = (1.0, 3.0), *, y: int = 1,
                            n: int = 1000, steps: int = 20, seed: int = 0,
                            extent: Sequence[float] = (-4.5, 7.0, -6.5, 5.0)) -> dict[float, dict[str, float]]:
    """Exercise "Guide with the clean classifier": the shipped unconditional ``toy_cfg`` (null label) steered by
    ``classifier`` (``classifier(x, t) -> logits``, e.g. a clean-trained network read at ``t = 0``) as the lesson's
    renderer does, scored by :func:`course_lib.sample_metrics.score_2d` against exact samples of class ``y`` (seed 11,
    as in the lesson). Returns per ``gamma`` the keys ``posterior sw diversity off_plot``."""
    mixture, schedule = toy.anisotropic(), _LINEAR
    render = widgets.classifier_guidance_render_2d(pretrained.load("toy_cfg").model, classifier, mixture, schedule, y,
                                                   n=n, steps=steps)
    reference = mixture.sample(n, y=y, generator=torch.Generator().manual_seed(11))[0]
    out = {}
    for gamma in gammas:
        score = sample_metrics.score_2d(render(gamma, seed)["learned"], mixture, y, reference, k=None, extent=extent)
        out[float(gamma)] = {key: score[key] for key in ("posterior", "sw", "diversity", "off_plot")}
    return out


def expected_set_guidance(labels: Sequence[int] = (1, 2), *, n: int = 1000, steps: int = 20,
                          seed: int = 0) -> dict[str, float]:
    """Exercise "Guiding towards a set of labels": exact guidance at ``gamma = 1`` with
    ``log p(y in labels | x_t)`` (a logsumexp of posterior columns) on ``toy.anisotropic()``. Returns the
    sliced-Wasserstein distance to fresh exact samples of ``p(x | y in labels)`` of: the guided samples
    (``"guided"``), the same sampler with the exact score of that set's mixture from the same noise
    (``"sampler_baseline"``), and other fresh exact samples (``"noise_floor"``)."""
    mixture = toy.anisotropic()
    idx = torch.as_tensor(list(labels), dtype=torch.long)
    if idx.numel() < 1 or idx.unique().numel() != idx.numel() or idx.min() < 0 or idx.max() >= mixture.num_classes:
        raise ValueError(f"labels must be distinct classes in 0..{mixture.num_classes - 1}, got {labels!r}")
    log_post = mixture.log_posterior_fn(_LINEAR)
    set_log_prob = lambda x, t: torch.logsumexp(log_post(x, t)[:, idx], dim=1, keepdim=True)  # noqa: E731
    subset = toy.GaussianMixture2D(mixture.means[idx], mixture.covs[idx], mixture.weights[idx])
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    guided = diffusion.sample(guidance.classifier_guidance(mixture.eps_fn(_LINEAR), set_log_prob, 0, 1.0, _LINEAR),
                              (n, 2), _LINEAR, steps=steps, eta=0.0, x_T=x_T)
    baseline = diffusion.sample(subset.eps_fn(_LINEAR), (n, 2), _LINEAR, steps=steps, eta=0.0, x_T=x_T)
    target = subset.sample(n, generator=torch.Generator().manual_seed(seed + 1))[0]
    fresh = subset.sample(n, generator=torch.Generator().manual_seed(seed + 2))[0]
    return {"guided": sample_metrics.sliced_wasserstein(guided, target),
            "sampler_baseline": sample_metrics.sliced_wasserstein(baseline, target),
            "noise_floor": sample_metrics.sliced_wasserstein(fresh, target)}


@torch.no_grad()
def _agreement(classifier: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((classifier(images).argmax(dim=1) == labels).double().mean())


def expected_judge_guidance(gammas: Sequence[float] = (1.0, 3.0, 10.0), *, m: int = 4, steps: int = 20,
                            seed: int = 7) -> dict[float, dict[str, float]]:
    """Exercise "Guide with the judge": the shipped unconditional U-Net (null label) steered by the
    shipped *judge* (a classifier of clean digits) at each ``gamma``, DDIM ``steps`` from
    ``conditional.grid_noise(m, seed)``. Returns per ``gamma`` the share of digits read as the one asked
    for by the judge (``"judge"``) and by the noise-aware ``mnist_classifier`` at ``t = 0`` (``"classifier"``)."""
    unet, noise_aware, judge = (pretrained.load(name) for name in ("mnist_cfg", "mnist_classifier", "mnist_judge"))
    k = unet.num_classes
    labels = conditional.grid_labels(m)
    uncond = guidance.model_eps_fn(unet.model, k, k)
    judge_log_prob = lambda x, t: judge.model(x).log_softmax(dim=1)  # noqa: E731  (the judge ignores t)
    at_zero = lambda x: noise_aware.model(x, torch.zeros(x.shape[0], dtype=torch.long))  # noqa: E731
    out = {}
    for gamma in gammas:
        eps_fn = guidance.classifier_guidance(uncond, judge_log_prob, labels, gamma, unet.schedule)
        images = diffusion.sample(eps_fn, (labels.shape[0], 1, 28, 28), unet.schedule, steps=steps, eta=0.0,
                                  x_T=conditional.grid_noise(m, seed)).clamp(-1.0, 1.0)
        out[float(gamma)] = {"judge": _agreement(judge.model, images, labels),
                             "classifier": _agreement(at_zero, images, labels)}
    return out


GRADING = [
    Grading(name="noised_logits", reference=_noised_logits, hidden_cases=_logits_hidden,
            understanding="Bayes' rule on lesson 0's noised class laws: with a shared covariance the quadratic terms "
                          "cancel, so the exact noise-aware classifier is linear, its slopes shrinking with t; logits "
                          "are defined only up to a shift common to all classes",
            shortcut="the mixture's posterior, log_posterior_fn, log_prob, score and OracleClassifier are twins; the "
                     "lesson displays Bayes' rule on scores, not the classifier's weights"),
    Grading(name="classifier_grad_from_logits", reference=_grad_from_logits, hidden_cases=_classifier_hidden,
            understanding="guidance needs grad log p(y | x_t), the log-softmax of the logits (the normaliser pushes "
                          "away from the other classes), each point with its own label and t, by one autograd call",
            shortcut="guidance.classifier_log_prob_grad, classifier_log_prob_fn and classifier_guidance are twins; "
                     "differentiating the raw logit (the displayed p_phi is a probability) fails every case"),
    Grading(name="guided_eps", reference=_guided_reference, hidden_cases=_guided_hidden,
            understanding="moving between scores and eps: the guided score s_gamma becomes eps_hat = eps - gamma "
                          "sigma_t grad log p(y | x_t), from score = -eps / sigma_t",
            shortcut="guidance.classifier_guidance is a twin; the lesson displays the guided score and "
                     "score = -eps/sigma_t separately, never the eps form"),
]
