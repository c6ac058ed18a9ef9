"""Measuring a classifier for classifier guidance: accuracy, calibration and gradients against ``t``, and cost.

Classifier guidance (docs/conventions.md, "Guidance weights") samples with

    eps_hat = eps(x_t) - gamma * sigma_t * grad_x log p(y | x_t),      (Dhariwal & Nichol 2021, Algorithm 2)

so the classifier is asked for ``log p(y | x_t)`` and its gradient at *every*
noise level the sampler visits. On a 2-D mixture the exact posterior of the
noised data, ``mixture.log_posterior_fn(schedule)``, is the Bayes classifier at
each ``t``: no classifier can be more accurate or better calibrated, and its
gradient is the one guidance should use. The functions here measure how far a
classifier ``log_prob_fn(x, t) -> [B, K]`` is from it, and what guidance costs
per sampling step.

On images (the lesson's MNIST part) nothing is exact: :func:`data_metrics_vs_t`
scores classifiers on held-out data noised by the forward process, and
:func:`label_gradients` returns ``grad_x log p(k | x_t)`` of one input for every
label ``k``, to be looked at as images; :func:`noisy_accuracy` is its one-classifier
summary that the MNIST recipe records in the weights' meta.
"""

from __future__ import annotations

import statistics
import time
from typing import Mapping, Sequence

import torch

from . import sample_metrics
from .data import check_digits
from .diffusion import EpsFn, Schedule, q_sample
from . import validate
from .guidance import LogProbFn, classifier_guidance, classifier_log_prob_fn, classifier_log_prob_grad
from .toy import GaussianMixture2D


def _check_batch(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1:
        raise ValueError("x must be a tensor [B, ...] with B >= 1")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a long tensor of shape [{x.shape[0]}]")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a long tensor of shape [{x.shape[0]}] (one label per point)")


def _log_probs(log_prob_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _check_batch(x, t, y)
    with torch.no_grad():
        log_probs = log_prob_fn(x, t)
    if log_probs.ndim != 2 or log_probs.shape[0] != x.shape[0]:
        raise ValueError(f"log_prob_fn must return [B, K] log-probabilities, got {tuple(log_probs.shape)}")
    validate.labels(y, x.shape[0], log_probs.shape[1])
    return log_probs


def accuracy(log_prob_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> float:
    """Share of points whose most probable class is their label: ``mean(argmax_k log p(k | x_t) == y)``.

    Args:
        log_prob_fn: ``(x [B, ...], t [B] long) -> [B, K]`` log-probabilities.
        x: ``[B, ...]`` the noised inputs ``x_t``.
        t: ``[B]`` long time steps in ``0..T-1``.
        y: ``[B]`` long labels in ``0..K-1``."""
    return float((_log_probs(log_prob_fn, x, t, y).argmax(dim=1) == y).double().mean())


def cross_entropy(log_prob_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> float:
    """Mean ``-log p(y | x_t)`` over the points, in nats: low only if the classifier is
    both right and honest about its confidence (an over-confident mistake costs a lot).

    Args:
        log_prob_fn: ``(x [B, ...], t [B] long) -> [B, K]`` log-probabilities.
        x: ``[B, ...]`` the noised inputs ``x_t``.
        t: ``[B]`` long time steps in ``0..T-1``.
        y: ``[B]`` long labels in ``0..K-1``."""
    log_probs = _log_probs(log_prob_fn, x, t, y)
    return float(-log_probs.gather(1, y[:, None]).double().mean())


def noised_samples(mixture: GaussianMixture2D, schedule: Schedule, t: int, n: int,
                   generator: torch.Generator | None = None, y: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` labelled points of the noised data at time step ``t``, drawn from its exact law
    ``mixture.noised(alpha_bar_t)`` (all of class ``y`` if given, i.e. from ``p_t(x_t | y)``):
    ``(x_t [n, 2] float32, t [n] long, y [n] long)``."""
    validate.integer(t, "t", minimum=0, maximum=schedule.T - 1)
    x_t, y = mixture.noised(schedule.alpha_bars[t].item()).sample(n, y=y, generator=generator)
    return x_t, torch.full((n,), t, dtype=torch.long), y


def metrics_vs_t(log_prob_fns: Mapping[str, LogProbFn], mixture: GaussianMixture2D, schedule: Schedule,
                 ts: Sequence[int], *, n: int = 4000, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Accuracy and cross-entropy of each named classifier at each time step in ``ts``,
    all classifiers scored on the same ``n`` exact samples of ``x_t`` (drawn from ``seed``).

    Returns ``{name: {"accuracy": [...], "cross_entropy": [...]}}``, lists in the order of ``ts``."""
    if not log_prob_fns:
        raise ValueError("log_prob_fns must name at least one classifier")
    if not ts:
        raise ValueError("ts must hold at least one time step")
    generator = torch.Generator().manual_seed(seed)
    out = {name: {"accuracy": [], "cross_entropy": []} for name in log_prob_fns}
    for t in ts:
        x_t, t_batch, y = noised_samples(mixture, schedule, int(t), n, generator)
        for name, fn in log_prob_fns.items():
            out[name]["accuracy"].append(accuracy(fn, x_t, t_batch, y))
            out[name]["cross_entropy"].append(cross_entropy(fn, x_t, t_batch, y))
    return out


def data_metrics_vs_t(log_prob_fns: Mapping[str, LogProbFn], x0: torch.Tensor, y: torch.Tensor,
                      schedule: Schedule, ts: Sequence[int], *, seed: int = 0,
                      batch_size: int = 1000) -> dict[str, dict[str, list[float]]]:
    """:func:`metrics_vs_t` on a labelled data set instead of an exact law: accuracy and
    cross-entropy of each named classifier on ``x_t = q_sample(x0, t, eps)`` at each ``t`` in ``ts``.

    ``x0 [N, ...]`` with labels ``y [N]`` (e.g. held-out digits). At each ``t`` one noise
    ``eps`` is drawn from ``seed`` (in the order of ``ts``; :func:`noisy_accuracy`
    calls this) and every classifier sees the same ``x_t``; ``log_prob_fn`` is called on chunks of ``batch_size``. Returns
    ``{name: {"accuracy": [...], "cross_entropy": [...]}}``, lists in the order of ``ts``."""
    if not log_prob_fns:
        raise ValueError("log_prob_fns must name at least one classifier")
    if not ts:
        raise ValueError("ts must hold at least one time step")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] < 1 or not x0.is_floating_point():
        raise ValueError("x0 must be a float tensor [N, ...] with N >= 1")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x0.shape[0],):
        raise ValueError(f"y must be a long tensor of shape [{x0.shape[0]}] (one label per example)")
    validate.integer(batch_size, "batch_size", minimum=1)
    generator = torch.Generator().manual_seed(seed)
    out = {name: {"accuracy": [], "cross_entropy": []} for name in log_prob_fns}
    for i, t in enumerate(ts):
        validate.integer(t, f"ts[{i}]", minimum=0, maximum=schedule.T - 1)
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        x_t = q_sample(x0, t_batch, torch.randn(x0.shape, generator=generator, dtype=x0.dtype), schedule)
        for name, fn in log_prob_fns.items():
            log_probs = torch.cat([_log_probs(fn, xc, tc, yc) for xc, tc, yc in
                                   zip(x_t.split(batch_size), t_batch.split(batch_size), y.split(batch_size))])
            out[name]["accuracy"].append(float((log_probs.argmax(dim=1) == y).double().mean()))
            out[name]["cross_entropy"].append(float(-log_probs.gather(1, y[:, None]).double().mean()))
    return out


def noisy_accuracy(classifier: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, schedule: Schedule,
                   ts: tuple[int, ...] = (0, 100, 250, 500, 750), seed: int = 0) -> dict[str, float]:
    """Accuracy of a noise-aware classifier on ``x_t = q_sample(x0, t)`` at each ``t`` in ``ts``,
    keyed by ``str(t)``: :func:`data_metrics_vs_t` for one classifier.

    Args:
        x0: ``[N, 1, 28, 28]`` clean digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``."""
    check_digits(x0, y)
    by_t = data_metrics_vs_t({"classifier": classifier_log_prob_fn(classifier)}, x0, y, schedule, list(ts),
                             seed=seed)["classifier"]["accuracy"]
    return {str(t): accuracy for t, accuracy in zip(ts, by_t)}


@torch.no_grad()
def toy_classifier_report(model: torch.nn.Module, mixture: GaussianMixture2D, schedule: Schedule, *,
                          ts: tuple[int, ...] = (0, 100, 200, 300, 500, 999), n: int = 20_000,
                          seed: int = 0) -> list[dict]:
    """Accuracy of a 2-D classifier ``model(x, t) -> logits`` and of the exact Bayes posterior on
    ``x_t``, and how often the two agree, at each ``t`` (recorded in ``toy_classifier``'s meta)."""
    generator = torch.Generator().manual_seed(seed)
    x0, y = mixture.sample(n, generator=generator)
    rows = []
    for t in ts:
        t_batch = torch.full((n,), t, dtype=torch.long)
        x_t = q_sample(x0, t_batch, torch.randn(x0.shape, generator=generator), schedule)
        bayes = mixture.noised(float(schedule.alpha_bars[t])).posterior(x_t).argmax(1)
        learned = model(x_t, t_batch).argmax(1)
        rows.append({"t": t, "accuracy": round((learned == y).float().mean().item(), 4),
                     "bayes_accuracy": round((bayes == y).float().mean().item(), 4),
                     "agreement": round((learned == bayes).float().mean().item(), 4)})
    return rows


def label_gradients(log_prob_fn: LogProbFn, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``grad_x log p(k | x_t)`` of one input for every label ``k``: what the classifier
    would change in ``x`` to make it more like class ``k``.

    ``x [1, ...]`` (one image ``[1, 1, 28, 28]``, or one point ``[1, 2]``) at time step ``t``.
    Returns ``(grads [K, ...], probs [K])``: row ``k`` of ``grads`` is the gradient of
    ``log p(k | x_t)`` by autograd (:func:`course_lib.guidance.classifier_log_prob_grad`),
    ``probs`` the classifier's ``p(k | x_t)``. Since ``sum_k p(k | x) = 1``, the
    probability-weighted gradients sum to zero: ``sum_k probs[k] grads[k] = 0``."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] != 1:
        raise ValueError(f"x must be one input [1, ...], got {tuple(x.shape) if isinstance(x, torch.Tensor) else x!r}")
    validate.integer(t, "t", minimum=0)
    t_one = torch.full((1,), t, dtype=torch.long)
    with torch.no_grad():
        log_probs = log_prob_fn(x, t_one)
    if log_probs.ndim != 2 or log_probs.shape[0] != 1:
        raise ValueError(f"log_prob_fn must return [B, K] log-probabilities, got {tuple(log_probs.shape)}")
    K = log_probs.shape[1]
    xs = x.expand(K, *x.shape[1:]).contiguous()
    grads = classifier_log_prob_grad(log_prob_fn, xs, t_one.expand(K).contiguous(), torch.arange(K))
    return grads, log_probs[0].exp()


def gradient_error(log_prob_fn: LogProbFn, reference_fn: LogProbFn, x: torch.Tensor, t: torch.Tensor,
                   y: torch.Tensor | int) -> dict[str, float]:
    """How far ``g = grad_x log p(y | x_t)`` of ``log_prob_fn`` is from ``g*`` of ``reference_fn``
    (typically the exact posterior), over the points ``x``:

    - ``relative_error = E||g - g*||^2 / E||g*||^2`` (0 is perfect, 1 is as bad as ``g = 0``);
    - ``cosine``: the mean cosine of the angle between ``g`` and ``g*`` (1: same directions).

    Args:
        x: ``[B, d]`` points (``[B, 2]`` on a 2-D mixture).
        t: ``[B]`` long time steps in ``0..T-1``.
        y: an int or a long tensor ``[B]`` of labels in ``0..K-1``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 1:
        raise ValueError("x must be a tensor [B, d] with B >= 1")
    g = classifier_log_prob_grad(log_prob_fn, x, t, y).double()
    g_ref = classifier_log_prob_grad(reference_fn, x.double(), t, y).double()
    cosine = torch.nn.functional.cosine_similarity(g, g_ref, dim=1, eps=1e-12).mean()
    return {"relative_error": sample_metrics.relative_error(g, g_ref), "cosine": float(cosine)}


def guided_step_cost(eps_fn: EpsFn, log_prob_fn: LogProbFn, y: torch.Tensor | int, schedule: Schedule,
                     x: torch.Tensor, t: int, *, repeats: int = 30,
                     compare: Mapping[str, EpsFn] | None = None) -> dict[str, float]:
    """What classifier guidance adds to one sampling step at time step ``t`` on the batch ``x``.

    Median CPU seconds (``time.process_time``: the work done, not the time spent waiting
    for a busy machine) of: ``unguided``, one call ``eps_fn(x, t)``; ``classifier_forward``,
    one call of ``log_prob_fn`` alone; ``classifier_gradient``, its forward and backward
    pass (``grad_x log p(y | x_t)``); ``guided``, one classifier-guided step (``eps_fn`` plus
    the gradient). Everything runs as the sampler runs it, under ``torch.no_grad``
    (autograd is switched back on for the gradient only), all calls interleaved.
    ``ratio = guided / unguided``.

    ``compare`` names further ``eps_fn`` s to time in the same rounds, e.g.
    ``{"cfg": ...}`` for a classifier-free guided step; each adds a key of its name.

    Args:
        y: an int or a long tensor ``[B]`` of labels in ``0..K-1``.
        x: ``[B, ...]`` the batch at step ``t`` (an int shared by the batch)."""
    validate.integer(t, "t", minimum=0, maximum=schedule.T - 1)
    validate.integer(repeats, "repeats", minimum=1)
    t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
    guided = classifier_guidance(eps_fn, log_prob_fn, y, 1.0, schedule)
    calls = {"unguided": lambda: eps_fn(x, t_batch),
             "classifier_forward": lambda: log_prob_fn(x, t_batch),
             "classifier_gradient": lambda: classifier_log_prob_grad(log_prob_fn, x, t_batch, y),
             "guided": lambda: guided(x, t_batch)}
    for name, fn in (compare or {}).items():
        if name in calls or name == "ratio":
            raise ValueError(f"compare must not reuse the name {name!r}")
        calls[name] = lambda fn=fn: fn(x, t_batch)
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for i in range(repeats + 3):  # 3 warm-up rounds first
            for name, call in calls.items():
                start = time.process_time()
                call()
                if i >= 3:
                    times[name].append(time.process_time() - start)
    out = {name: statistics.median(ts) for name, ts in times.items()}
    out["ratio"] = out["guided"] / out["unguided"]
    return out
