"""Guidance-weight sweeps: quality against diversity, one row per setting, on 2-D and on MNIST.

Every row holds both conventions of docs/conventions.md, "Guidance weights", CFG's ``w`` and
``gamma = 1 + w``, so CFG and classifier-guidance rows share one axis. Every
setting starts from the same noise, so rows differ by the weight alone. Format
rows with :func:`course_lib.tables.format_rows`, pick them with
:func:`course_lib.tables.rows_where`, draw them with :func:`course_lib.plots.plot_sweep`.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from . import diffusion, guidance, validate
from .diffusion import EpsFn
from .conditional import cfg_grid, classifier_grid, grid_labels, grid_noise, model_schedule
from .data import balanced_subset
from .sample_metrics import frechet_distance, judge_features, judged_accuracy, score_2d, within_class_diversity
from .toy import GaussianMixture2D


def knob_row(kind: str, value: float) -> dict:
    """Both conventions for one setting: ``kind="cfg"`` takes ``w``, ``kind="classifier"`` takes ``gamma``."""
    if kind == "cfg":
        return {"guidance": "cfg", "w": float(value), "gamma": 1.0 + float(value)}
    if kind == "classifier":
        return {"guidance": "classifier", "w": float(value) - 1.0, "gamma": float(value)}
    raise ValueError(f"kind must be 'cfg' or 'classifier', got {kind!r}")


def sweep(model: torch.nn.Module, judge: torch.nn.Module, reference: torch.Tensor, *,
          ws: Sequence[float] = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0), gammas: Sequence[float] = (),
          classifier: torch.nn.Module | None = None, m: int = 20, steps: int = 20, seed: int = 0,
          schedule: diffusion.Schedule | None = None) -> list[dict]:
    """Quality against diversity on MNIST: one row per guidance setting.

    Every setting samples ``m`` digits of each class from the same noise ``x_T``
    (``grid_noise`` of ``seed``) and reports ``accuracy`` (judged), ``diversity``
    (within each class) and ``frechet`` (on judge features, to ``reference``: real
    digits or their judge features), with ``seconds`` of sampling. CFG rows come from
    ``ws``; classifier-guidance rows from ``gammas`` (they need the noise-aware
    ``classifier``). Rows hold both ``w`` and ``gamma``.

    Args:
        reference: real digits ``[N, 1, 28, 28]`` in ``[-1, 1]``, or their judge features ``[N, feature_dim]``."""
    if gammas and classifier is None:
        raise ValueError("classifier must be given to sweep gammas (classifier guidance)")
    schedule = model_schedule(model, schedule)
    x_T, labels = grid_noise(m, seed), grid_labels(m)
    ref = reference if reference.ndim == 2 else judge_features(judge, reference)
    rows = []
    settings = [("cfg", w) for w in ws] + [("classifier", g) for g in gammas]
    for kind, value in settings:
        start = time.perf_counter()
        if kind == "cfg":
            images = cfg_grid(model, value, x_T, steps, schedule=schedule)
        else:
            images = classifier_grid(model, classifier, value, x_T, steps, schedule=schedule)
        seconds = time.perf_counter() - start
        rows.append({**knob_row(kind, value), "accuracy": judged_accuracy(judge, images, labels),
                     "diversity": within_class_diversity(images, labels),
                     "frechet": frechet_distance(judge_features(judge, images), ref), "seconds": seconds})
    return rows


def real_digits_row(judge: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor, *,
                    m: int = 20, seed: int = 0) -> dict:
    """The same metrics as :func:`sweep` on ``m`` real digits of each class (e.g. the test
    split): the level a perfect generator would reach with this many samples.

    Args:
        x: ``[N, 1, 28, 28]`` real digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``, each digit at least ``m`` times.
        reference: real digits ``[N', 1, 28, 28]``, or their judge features ``[N', feature_dim]``."""
    images, labels = balanced_subset(x, y, m, seed)
    ref = reference if reference.ndim == 2 else judge_features(judge, reference)
    return {"guidance": "real digits", "w": float("nan"), "gamma": float("nan"),
            "accuracy": judged_accuracy(judge, images, labels),
            "diversity": within_class_diversity(images, labels), "frechet": frechet_distance(judge_features(judge, images), ref),
            "seconds": 0.0}


def sweep_2d(mixture: GaussianMixture2D, schedule: diffusion.Schedule, y: int, *,
             model: torch.nn.Module | None = None, classifier: torch.nn.Module | None = None,
             pairs: dict[str, tuple[EpsFn, EpsFn]] | None = None, ws: Sequence[float] = (),
             gammas: Sequence[float] = (), n: int = 1000, steps: int = 50, eta: float = 0.0, seed: int = 0,
             k: int | None = 5) -> list[dict]:
    """The 2-D counterpart of :func:`sweep`: :func:`course_lib.sample_metrics.score_2d` of guided samples
    of class ``y`` at each ``w`` (CFG) and ``gamma`` (classifier guidance).

    Each setting is sampled by DDIM (``eta``; 0: deterministic) from one shared noise ``x_T``:
    with the exact scores of ``mixture`` (rows ``"model": "exact"``: what a perfect model does
    under guidance); when given, with the learned ``model`` (null label for the unconditional
    score) and ``classifier`` (``"model": "learned"``); and for every ``name: (eps_cond_fn,
    eps_uncond_fn)`` in ``pairs``, CFG of that pair (``"model": name``; CFG rows only), e.g. the
    exact eps of a deliberately wrong mixture. The target is ``n`` exact samples of ``p(x | y)``;
    ``k=None`` skips the k-NN precision and recall."""
    K = mixture.num_classes
    validate.labels(y, 1, K)
    validate.integer(n, "n", minimum=2 * k + 2 if k is not None else 2)
    g = torch.Generator().manual_seed(seed)
    target = mixture.sample(n, y, generator=g)[0]
    x_T = torch.randn(n, 2, generator=g)
    exact_uncond, exact_log_post = mixture.eps_fn(schedule), mixture.log_posterior_fn(schedule)
    rows = []
    for kind, values in (("cfg", ws), ("classifier", gammas)):
        for value in values:
            fns = {}
            if kind == "cfg":
                fns["exact"] = guidance.cfg(mixture.eps_fn(schedule, y), exact_uncond, value)
                if model is not None:
                    fns["learned"] = guidance.model_cfg_eps_fn(model, y, value, K)
                for name, (cond_fn, uncond_fn) in (pairs or {}).items():
                    fns[name] = guidance.cfg(cond_fn, uncond_fn, value)
            else:
                fns["exact"] = guidance.classifier_guidance(exact_uncond, exact_log_post, y, value, schedule)
                if model is not None and classifier is not None:
                    fns["learned"] = guidance.classifier_guidance(guidance.model_eps_fn(model, K, K),
                                                                  guidance.classifier_log_prob_fn(classifier), y,
                                                                  value, schedule)
            for name, eps_fn in fns.items():
                samples = diffusion.sample(eps_fn, (n, 2), schedule, steps=steps, eta=eta, x_T=x_T,
                                           generator=torch.Generator().manual_seed(seed + 1)).float()
                rows.append({**knob_row(kind, value), "model": name, **score_2d(samples, mixture, y, target, k=k)})
    return rows
