"""The MNIST track: training recipes, guided digit grids, their metrics and sweeps.

Three networks, each trained by a recipe here (``python -m course_lib.train mnist``
runs them all and writes the shipped weights):

- ``mnist_cfg``: a :class:`~course_lib.unet.ConditionalUNet` trained with label
  dropout, so one network gives ``eps(x_t, y)`` and ``eps(x_t, null)`` for
  classifier-free guidance (Ho & Salimans 2021, Algorithm 1);
- ``mnist_classifier``: a :class:`~course_lib.unet.NoisyImageClassifier`
  ``p_phi(y | x_t, t)`` for classifier guidance (Dhariwal & Nichol 2021);
- ``mnist_judge``: an :class:`~course_lib.unet.ImageClassifier` trained on
  clean digits only. It never steers sampling; it only grades it: judged
  accuracy, and the features for a Frechet distance (Heusel et al. 2017).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import classifier_diagnostics, conditioning, data, diffusion, guidance, metrics, plots, train
from .unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
COMMAND = "python -m course_lib.train mnist"


# --------------------------------------------------------------------------- recipes

@dataclass(frozen=True)
class DigitsRecipe:
    """Everything that decides the three MNIST networks; the shipped weights use the defaults.

    ``quick()`` is the from-scratch recipe for a lesson run with
    ``TRAIN_FROM_SCRATCH = True``: fewer steps, the same everything else."""

    seed: int = 0
    schedule: str = "linear"
    T: int = 1000
    base_channels: int = 32
    emb_dim: int = 64
    # conditional U-Net (label dropout for CFG); a constant learning rate after a warm-up:
    # decaying it lowers the loss but weakens how closely samples follow the label
    steps: int = 6000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 200
    lr_decay: bool = False
    p_uncond: float = 0.15
    ema_decay: float = 0.999
    # noise-aware classifier for classifier guidance
    classifier_steps: int = 4000
    classifier_batch_size: int = 128
    classifier_lr: float = 2e-3
    # the clean judge (evaluation only)
    judge_steps: int = 2000
    judge_batch_size: int = 128
    judge_lr: float = 1e-3
    judge_shift: int = 2

    def __post_init__(self) -> None:
        counts = ("T", "steps", "batch_size", "classifier_steps", "classifier_batch_size", "judge_steps",
                  "judge_batch_size")
        for name in ("seed", "judge_shift", "warmup_steps", *counts):
            value, low = getattr(self, name), 1 if name in counts else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("lr", "classifier_lr", "judge_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not 0 <= self.p_uncond <= 1:
            raise ValueError(f"p_uncond must lie in [0, 1], got {self.p_uncond!r}")
        if not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {self.ema_decay!r}")

    @classmethod
    def quick(cls) -> DigitsRecipe:
        """The from-scratch recipe of the lessons: the U-Net trains in about 7 minutes on an
        idle 2-core CPU with 2 threads (``python -m course_lib.bench --only mnist-train --threads 2``
        measured 397 s; judged accuracy 0.954 at ``w = 3``,
        DDIM 50 steps, 500 digits)."""
        return cls(steps=4000, classifier_steps=1500, judge_steps=1000)

    def make_schedule(self) -> diffusion.Schedule:
        return diffusion.make_schedule(self.schedule, self.T)


def _meta(recipe: DigitsRecipe, arch: dict, steps: int, seconds: float, cpu_seconds: float, x: torch.Tensor,
          device: str | torch.device, **extra) -> dict:
    """Plain-data meta for :func:`course_lib.pretrained.save`: how and where a model was trained
    (``seconds`` of wall-clock time, ``cpu_seconds`` of CPU time: on a shared machine they differ)."""
    return {"arch": arch, "schedule": {"kind": recipe.schedule, "T": recipe.T}, "command": COMMAND,
            "seed": recipe.seed, "steps": steps, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "threads": torch.get_num_threads(), "device": str(device),
            "data_source": data.last_source(), "num_train": int(x.shape[0]), "torch": str(torch.__version__),
            "machine": platform.machine(), "recipe": asdict(recipe), **extra}


def _device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``ValueError`` if this torch cannot use it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda' or another torch device, got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but this torch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was asked for, but MPS is not available")
    return dev


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images ``[N, 1, 28, 28]`` in ``[-1, 1]`` and labels ``[N]`` (see :mod:`course_lib.data`)."""
    return data.load_mnist(split)


def train_mnist_cfg(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                    progress: bool = True, device: str | torch.device = "cpu") -> tuple[ConditionalUNet, dict]:
    """Train the conditional U-Net with label dropout ``p_uncond`` (one network for CFG).

    Uses :func:`course_lib.train.train_diffusion` (DDPM loss, Adam with a warm-up and,
    by default, a constant learning rate, EMA weights) on ``device``. Returns the model
    in eval mode, on the CPU, and its meta."""
    _check_digits(x0, y)
    arch = {"num_classes": NUM_CLASSES, "T": recipe.T, "base_channels": recipe.base_channels,
            "emb_dim": recipe.emb_dim}
    model = train.seeded_init(recipe.seed, lambda: ConditionalUNet(**arch)).to(_device(device))
    cpu = time.process_time()
    history = train.train_diffusion(model, x0, y, recipe.make_schedule(), steps=recipe.steps,
                                    batch_size=recipe.batch_size, lr=recipe.lr, p_uncond=recipe.p_uncond,
                                    ema_decay=recipe.ema_decay, lr_decay=recipe.lr_decay,
                                    warmup_steps=recipe.warmup_steps,
                                    generator=torch.Generator().manual_seed(recipe.seed), progress=progress,
                                    desc="mnist_cfg")
    cpu = time.process_time() - cpu
    tail = history.losses[-200:]
    meta = _meta(recipe, arch, recipe.steps, history.seconds, cpu, x0, device, batch_size=recipe.batch_size,
                 lr=recipe.lr, p_uncond=recipe.p_uncond, ema_decay=recipe.ema_decay, final_loss=sum(tail) / len(tail))
    return model.cpu(), meta


def train_mnist_classifier(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                           progress: bool = True, device: str | torch.device = "cpu"
                           ) -> tuple[NoisyImageClassifier, dict]:
    """Train the noise-aware classifier ``p_phi(y | x_t, t)`` with
    :func:`course_lib.train.train_classifier` (``t`` uniform, cross-entropy) on ``device``;
    returns it on the CPU."""
    _check_digits(x0, y)
    arch = {"num_classes": NUM_CLASSES, "T": recipe.T, "base_channels": recipe.base_channels,
            "emb_dim": recipe.emb_dim}
    model = train.seeded_init(recipe.seed + 1, lambda: NoisyImageClassifier(**arch)).to(_device(device))
    cpu = time.process_time()
    history = train.train_classifier(model, x0, y, recipe.make_schedule(), noisy=True,
                                     steps=recipe.classifier_steps, batch_size=recipe.classifier_batch_size,
                                     lr=recipe.classifier_lr,
                                     generator=torch.Generator().manual_seed(recipe.seed + 1), progress=progress,
                                     desc="mnist_classifier")
    cpu = time.process_time() - cpu
    tail = history.accuracies[-200:]
    meta = _meta(recipe, arch, recipe.classifier_steps, history.seconds, cpu, x0, device,
                 batch_size=recipe.classifier_batch_size, lr=recipe.classifier_lr,
                 final_batch_accuracy=sum(tail) / len(tail))
    return model.cpu(), meta


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image ``[B, 1, 28, 28]`` by up to ``max_shift`` pixels each way, filling with
    background (-1): the judge should not care where on the canvas a digit sits."""
    if max_shift == 0:
        return x
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, x.shape[0]), generator=generator)
    rows = (dy[:, None] + torch.arange(28))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(28))[:, None, None, :]
    return pad[torch.arange(x.shape[0])[:, None, None, None], torch.zeros(1, dtype=torch.long)[:, None, None],
               rows, cols]


def train_judge(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                progress: bool = True, device: str | torch.device = "cpu") -> tuple[ImageClassifier, dict]:
    """Train the clean judge :class:`~course_lib.unet.ImageClassifier` on clean digits with random
    shifts, on ``device``; returns it on the CPU.

    A small loop of its own: :func:`course_lib.train.train_classifier` feeds
    ``model(x, t)`` and cannot augment, and the judge takes no ``t``."""
    from tqdm.auto import tqdm

    _check_digits(x0, y)
    generator = torch.Generator().manual_seed(recipe.seed + 2)
    dev = _device(device)
    model = train.seeded_init(recipe.seed + 2, lambda: ImageClassifier(num_classes=NUM_CLASSES)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.judge_lr)
    scheduler = train._cosine_lr(optimizer, recipe.judge_steps)
    start, cpu, accs = time.perf_counter(), time.process_time(), []
    model.train()
    for _ in tqdm(range(recipe.judge_steps), desc="mnist_judge", disable=not progress):
        idx = torch.randint(x0.shape[0], (recipe.judge_batch_size,), generator=generator)
        xb, yb = random_shift(x0[idx], recipe.judge_shift, generator).to(dev), y[idx].to(dev)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        accs.append((logits.argmax(1) == yb).float().mean().item())
    model.eval()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    meta = _meta(recipe, {"num_classes": NUM_CLASSES, "feature_dim": model.feature_dim}, recipe.judge_steps,
                 seconds, cpu, x0, device, batch_size=recipe.judge_batch_size, lr=recipe.judge_lr,
                 shift=recipe.judge_shift, final_batch_accuracy=sum(accs[-200:]) / len(accs[-200:]))
    return model.cpu(), meta


def _check_digits(x: torch.Tensor, y: torch.Tensor | None = None, name: str = "x0") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE or \
            not x.is_floating_point() or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [N, 1, 28, 28] of digits in [-1, 1], got {got}")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (x.shape[0],):
            raise ValueError(f"y must be a long tensor [{x.shape[0]}] of labels in 0..9")
        if y.numel() and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"y must lie in 0..9, got values in {int(y.min())}..{int(y.max())}")


def train_all(recipe: DigitsRecipe = DigitsRecipe(), *, root=None, command: str = COMMAND,
              progress: bool = True, say: Callable[..., None] = print, eval_per_class: int = 50,
              eval_steps: int = 50, device: str | torch.device = "cpu") -> list:
    """Train the judge, ``mnist_cfg`` and ``mnist_classifier`` from ``recipe`` and write them
    with :func:`course_lib.pretrained.save` (to ``root``, default the shipped weights folder),
    recording ``command`` (the command line that called this) in each file's meta and the
    manifest. Training runs on ``device``; grading runs on the CPU.
    ``python -m course_lib.train mnist`` runs this (on the GPU when there is one). Returns the paths written.

    The judge comes first so that ``mnist_cfg``'s meta can record the judged accuracy
    its samples reach (``eval_per_class`` per digit, DDIM ``eval_steps``, ``w = 0, 1, 3``)."""
    from . import pretrained

    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    schedule = recipe.make_schedule()
    paths = []

    judge, meta = train_judge(x, y, recipe, progress=progress, device=device)
    meta["test_accuracy"] = judged_accuracy(judge, x_test, y_test)
    paths.append(pretrained.save("mnist_judge", judge, meta, command=command, root=root))
    say(f"mnist_judge: {meta['seconds']:.0f} s, accuracy on the {len(x_test)} test digits {meta['test_accuracy']:.3f}")

    model, meta = train_mnist_cfg(x, y, recipe, progress=progress, device=device)
    by_w = judge_cfg_model(model, judge, schedule, per_class=eval_per_class, steps=eval_steps, seed=recipe.seed + 1000)
    meta["judged_accuracy"] = {"by_w": by_w, "per_class": eval_per_class, "ddim_steps": eval_steps}
    paths.append(pretrained.save("mnist_cfg", model, meta, command=command, root=root))
    say(f"mnist_cfg: {meta['seconds']:.0f} s; judged accuracy (DDIM {eval_steps}, {eval_per_class} per digit) "
        + ", ".join(f"w={w}: {a:.3f}" for w, a in by_w.items()))

    classifier, meta = train_mnist_classifier(x, y, recipe, progress=progress, device=device)
    meta["test_accuracy_by_t"] = noisy_accuracy(classifier, x_test, y_test, schedule)
    paths.append(pretrained.save("mnist_classifier", classifier, meta, command=command, root=root))
    say(f"mnist_classifier: {meta['seconds']:.0f} s; test accuracy by t "
        + ", ".join(f"{t}: {a:.3f}" for t, a in meta["test_accuracy_by_t"].items()))
    return paths


def noisy_accuracy(classifier: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, schedule: diffusion.Schedule,
                   ts: tuple[int, ...] = (0, 100, 250, 500, 750), seed: int = 0) -> dict[str, float]:
    """Accuracy of a noise-aware classifier on ``x_t = q_sample(x0, t)`` at each ``t`` in ``ts``,
    keyed by ``str(t)``: :func:`course_lib.classifier_diagnostics.data_metrics_vs_t` for one classifier."""
    _check_digits(x0, y)
    by_t = classifier_diagnostics.data_metrics_vs_t({"classifier": classifier_log_prob_fn(classifier)}, x0, y,
                                                    schedule, list(ts), seed=seed)["classifier"]["accuracy"]
    return {str(t): accuracy for t, accuracy in zip(ts, by_t)}


# --------------------------------------------------------------------------- grids

def grid_labels(m: int) -> torch.Tensor:
    """Labels ``[10 * m]``: ``0, 1, ..., 9`` repeated ``m`` times, so a grid drawn ten
    to a row (``plots.image_grid(images, nrow=10)``) has one digit per column."""
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise ValueError(f"m must be a positive integer (samples per digit), got {m!r}")
    return torch.arange(NUM_CLASSES).repeat(m)


def grid_noise(m: int, seed: int = 0) -> torch.Tensor:
    """Starting noise ``x_T [10 * m, 1, 28, 28]`` drawn from ``seed``: pass the same
    tensor at every guidance weight to compare weights on the same noise."""
    grid_labels(m)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return torch.randn((NUM_CLASSES * m, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


def _grid_size(x_T: torch.Tensor) -> int:
    if not isinstance(x_T, torch.Tensor) or x_T.ndim != 4 or tuple(x_T.shape[1:]) != IMAGE_SHAPE \
            or x_T.shape[0] % NUM_CLASSES or x_T.shape[0] == 0 or not x_T.is_floating_point():
        got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
        raise ValueError(f"x_T must be a float tensor [10 * m, 1, 28, 28] (m samples of each digit), got {got}")
    if not torch.isfinite(x_T).all():
        raise ValueError("x_T must be finite")
    return x_T.shape[0] // NUM_CLASSES


def _schedule_for(model: torch.nn.Module, schedule: diffusion.Schedule | None) -> diffusion.Schedule:
    """``schedule``, checked against the model's ``T``; by default the recipe's (linear, the model's T)."""
    T = getattr(model, "T", None)
    if schedule is None:
        return diffusion.make_schedule(DigitsRecipe.schedule, T or DigitsRecipe.T)
    if not isinstance(schedule, diffusion.Schedule):
        raise ValueError(f"schedule must be a course_lib.diffusion.Schedule, got {type(schedule).__name__}")
    if T is not None and schedule.T != T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={T}")
    return schedule


def cfg_grid(model: torch.nn.Module, w: float, x_T: torch.Tensor, steps: int = 20, *,
             schedule: diffusion.Schedule | None = None, eta: float = 0.0) -> torch.Tensor:
    """Classifier-free guided digits ``[10 * m, 1, 28, 28]`` in ``[-1, 1]`` from noise ``x_T``.

    Sample ``i`` is digit ``i % 10`` (:func:`grid_labels`), drawn with
    ``eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null)`` (Ho & Salimans 2021, eq. 6)
    by DDIM over ``steps`` steps (``eta = 0``: deterministic, so the same ``x_T``
    at two weights shows what the weight alone changes). Clipped to ``[-1, 1]``."""
    m = _grid_size(x_T)
    schedule = _schedule_for(model, schedule)
    eps_fn = guidance.model_cfg_eps_fn(model, grid_labels(m), w, NUM_CLASSES)
    x0 = diffusion.sample(eps_fn, tuple(x_T.shape), schedule, steps=steps, eta=eta, x_T=x_T)
    return x0.clamp(-1.0, 1.0)


def classifier_log_prob_fn(classifier: torch.nn.Module):
    """``(x, t) -> log p_phi(y | x_t) [B, 10]`` of a noise-aware classifier ``classifier(x, t) -> logits``."""
    return lambda x, t: torch.log_softmax(classifier(x, t), dim=1)


def classifier_grid(model: torch.nn.Module, classifier: torch.nn.Module, gamma: float, x_T: torch.Tensor,
                    steps: int = 20, *, schedule: diffusion.Schedule | None = None,
                    eta: float = 0.0) -> torch.Tensor:
    """Classifier-guided digits ``[10 * m, 1, 28, 28]`` in ``[-1, 1]`` from noise ``x_T``.

    The unconditional prediction ``eps(x_t, null)`` of ``model`` steered by the
    noise-aware ``classifier``: ``eps_hat = eps(x_t) - gamma sigma_t grad log p_phi(y | x_t)``
    (Dhariwal & Nichol 2021, Algorithm 2 in eps form). ``gamma = 0`` is unconditional,
    ``gamma = 1`` the Bayes conditional. Sample ``i`` is digit ``i % 10``."""
    m = _grid_size(x_T)
    schedule = _schedule_for(model, schedule)
    uncond = guidance.model_eps_fn(model, NUM_CLASSES, NUM_CLASSES)
    eps_fn = guidance.classifier_guidance(uncond, classifier_log_prob_fn(classifier), grid_labels(m), gamma,
                                          schedule)
    x0 = diffusion.sample(eps_fn, tuple(x_T.shape), schedule, steps=steps, eta=eta, x_T=x_T)
    return x0.clamp(-1.0, 1.0)


# --------------------------------------------------------------------------- metrics

@torch.no_grad()
def judge_features(judge: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The judge's penultimate features ``[N, feature_dim]`` of ``images [N, 1, 28, 28]``."""
    _check_digits(images, name="images")
    return torch.cat([judge.features(chunk) for chunk in images.split(batch_size)])


@torch.no_grad()
def judged_accuracy(judge: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` that the independent ``judge`` classifies as the digit they were asked to be."""
    _check_digits(images, labels, name="images")
    return float((conditioning.judge_verdicts(judge, images) == labels).double().mean())


def judge_cfg_model(model: torch.nn.Module, judge: torch.nn.Module, schedule: diffusion.Schedule | None = None, *,
                    ws: Sequence[float] = (0.0, 1.0, 3.0), per_class: int = 50, steps: int = 50,
                    seed: int = 1000) -> dict[str, float]:
    """Judged accuracy of CFG samples at each weight in ``ws``: ``per_class`` digits of every
    class from the noise :func:`grid_noise` ``(per_class, seed)`` (the same at every ``w``),
    DDIM ``steps``. Returns ``{"0": acc, "1": acc, "3": acc}`` keyed by ``f"{w:g}"``."""
    x_T, labels = grid_noise(per_class, seed=seed), grid_labels(per_class)
    return {f"{w:g}": judged_accuracy(judge, cfg_grid(model, w, x_T, steps, schedule=schedule), labels) for w in ws}


def within_class_diversity(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over digits of the mean pairwise pixel distance between samples of that digit
    (:func:`course_lib.metrics.mean_pairwise_distance`); every digit needs two samples."""
    _check_digits(images, labels, name="images")
    per_class = []
    for k in labels.unique().tolist():
        members = images[labels == k]
        if members.shape[0] < 2:
            raise ValueError(f"labels must give every digit at least 2 samples; digit {k} has 1")
        per_class.append(metrics.mean_pairwise_distance(members))
    return sum(per_class) / len(per_class)


def feature_frechet(judge: torch.nn.Module, images: torch.Tensor, reference: torch.Tensor) -> float:
    """Frechet distance in the judge's feature space between ``images`` and ``reference``:
    a ``[N, 1, 28, 28]`` set of real digits, or their precomputed features ``[M, feature_dim]``
    (:func:`judge_features`; pass those to score many sample sets against one reference)."""
    ref = reference if reference.ndim == 2 else judge_features(judge, reference)
    return metrics.frechet_distance(judge_features(judge, images), ref)


def balanced_subset(x: torch.Tensor, y: torch.Tensor, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` examples of each digit, ordered like :func:`grid_labels` (sample ``i`` is digit ``i % 10``)."""
    _check_digits(x, y)
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(NUM_CLASSES):
        idx = (y == k).nonzero()[:, 0]
        if idx.numel() < m:
            raise ValueError(f"m must be at most {idx.numel()} (the examples of digit {k}), got {m}")
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:m]])
    order = torch.stack(picks, dim=1).reshape(-1)
    return x[order], y[order]


# --------------------------------------------------------------------------- sweeps

def _knob_row(kind: str, value: float) -> dict:
    """Both conventions of DESIGN.md section 2 for one setting: CFG's ``w`` and ``gamma = 1 + w``."""
    if kind == "cfg":
        return {"guidance": "cfg", "w": float(value), "gamma": 1.0 + float(value)}
    return {"guidance": "classifier", "w": float(value) - 1.0, "gamma": float(value)}


def sweep(model: torch.nn.Module, judge: torch.nn.Module, reference: torch.Tensor, *,
          ws: Sequence[float] = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0), gammas: Sequence[float] = (),
          classifier: torch.nn.Module | None = None, m: int = 20, steps: int = 20, seed: int = 0,
          schedule: diffusion.Schedule | None = None) -> list[dict]:
    """Quality against diversity on MNIST: one row per guidance setting.

    Every setting samples ``m`` digits of each class from the same noise ``x_T``
    (:func:`grid_noise` of ``seed``) and reports ``accuracy`` (:func:`judged_accuracy`),
    ``diversity`` (:func:`within_class_diversity`) and ``frechet``
    (:func:`feature_frechet` to ``reference``: real digits or their judge features),
    with ``seconds`` of sampling. CFG rows come from ``ws``; classifier-guidance rows
    from ``gammas`` (they need the noise-aware ``classifier``). Rows hold both ``w``
    and ``gamma``."""
    if gammas and classifier is None:
        raise ValueError("classifier must be given to sweep gammas (classifier guidance)")
    schedule = _schedule_for(model, schedule)
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
        rows.append({**_knob_row(kind, value), "accuracy": judged_accuracy(judge, images, labels),
                     "diversity": within_class_diversity(images, labels),
                     "frechet": feature_frechet(judge, images, ref), "seconds": seconds})
    return rows


def real_digits_row(judge: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor, *,
                    m: int = 20, seed: int = 0) -> dict:
    """The same metrics as :func:`sweep` on ``m`` real digits of each class (e.g. the test
    split): the level a perfect generator would reach with this many samples."""
    images, labels = balanced_subset(x, y, m, seed)
    ref = reference if reference.ndim == 2 else judge_features(judge, reference)
    return {"guidance": "real digits", "w": float("nan"), "gamma": float("nan"),
            "accuracy": judged_accuracy(judge, images, labels),
            "diversity": within_class_diversity(images, labels), "frechet": feature_frechet(judge, images, ref),
            "seconds": 0.0}


def tradeoff_metrics_2d(samples: torch.Tensor, target: torch.Tensor, mixture, y: int, k: int = 5) -> dict:
    """Samples ``[n, 2]`` meant to follow ``p(x | y)`` scored against exact samples ``target``
    of ``p(x | y)``: k-NN ``precision`` and ``recall`` (Kynkaanniemi et al. 2019),
    ``diversity`` (mean pairwise distance), ``sw`` (sliced Wasserstein to the target) and
    ``posterior``, the mean exact ``p(y | x)`` of the samples (the 2-D judge: a perfect classifier)."""
    precision, recall = metrics.precision_recall(target, samples, k=k)
    posterior = float(mixture.posterior(samples.double())[:, y].mean())
    return {"precision": precision, "recall": recall, "diversity": metrics.mean_pairwise_distance(samples),
            "sw": metrics.sliced_wasserstein(samples, target), "posterior": posterior}


def sweep_2d(mixture, schedule: diffusion.Schedule, y: int, *, model: torch.nn.Module | None = None,
             classifier: torch.nn.Module | None = None, ws: Sequence[float] = (),
             gammas: Sequence[float] = (), n: int = 1000, steps: int = 50, seed: int = 0,
             k: int = 5) -> list[dict]:
    """The 2-D counterpart of :func:`sweep`: :func:`tradeoff_metrics_2d` of guided samples
    of class ``y`` at each ``w`` (CFG) and ``gamma`` (classifier guidance).

    Each setting is sampled by DDIM (``eta = 0``) from one shared noise ``x_T`` twice:
    with the exact scores of ``mixture`` (rows ``"model": "exact"``: what a perfect
    model does under guidance) and, when given, with the learned ``model`` (null
    label for the unconditional score) and ``classifier`` (``"model": "learned"``).
    The target is ``n`` exact samples of ``p(x | y)``."""
    K = mixture.num_classes
    guidance.check_labels(y, 1, K)
    if not isinstance(n, int) or n < 2 * k + 2:
        raise ValueError(f"n must be an integer of at least {2 * k + 2}, got {n!r}")
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
            else:
                fns["exact"] = guidance.classifier_guidance(exact_uncond, exact_log_post, y, value, schedule)
                if model is not None and classifier is not None:
                    fns["learned"] = guidance.classifier_guidance(guidance.model_eps_fn(model, K, K),
                                                                  classifier_log_prob_fn(classifier), y, value,
                                                                  schedule)
            for name, eps_fn in fns.items():
                samples = diffusion.sample(eps_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T).float()
                rows.append({**_knob_row(kind, value), "model": name,
                             **tradeoff_metrics_2d(samples, target, mixture, y, k)})
    return rows


def rows_where(rows: Sequence[dict], **match) -> list[dict]:
    """The rows whose entries equal every ``key=value`` in ``match``."""
    return [r for r in rows if all(r.get(key) == value for key, value in match.items())]


def format_rows(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of sweep rows (numbers to 3 decimals; a NaN, such as the knob of the
    real-digits row, shows as "-")."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    columns = list(columns or rows[0])

    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    cells = [columns] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(wd) for cell, wd in zip(row, widths)) for row in cells)


def plot_sweep(rows: Sequence[dict], metric: str, ax=None, *, x: str = "w", label: str | None = None,
               reference: float | None = None, reference_label: str = "real digits", title: str | None = None,
               ylabel: str | None = None, **style):
    """``metric`` against the knob ``x`` (``"w"`` or ``"gamma"``) for sweep rows, one line;
    ``reference`` draws a dashed horizontal line (e.g. the real digits' value). Returns the axes."""
    import matplotlib.pyplot as plt

    if not rows or metric not in rows[0] or x not in rows[0]:
        raise ValueError(f"rows must be sweep rows holding {metric!r} and {x!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 3.4), layout="constrained")
    xs, ys = [r[x] for r in rows], [r[metric] for r in rows]
    style.setdefault("marker", "o")
    ax.plot(xs, ys, label=label, **style)
    if reference is not None:
        ax.axhline(reference, color="0.4", linestyle="--", linewidth=1.0, label=reference_label)
    symbol = {"w": "$w$", "gamma": r"$\gamma$"}.get(x, x)
    ax.set(xlabel=symbol if x != "w" else r"$w$  ($\gamma = 1 + w$)", ylabel=ylabel or metric)
    if title is not None:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------- benchmark

def bench_rows(threads: int | None = None) -> Iterator:
    """Benchmark rows for ``python -m course_lib.bench`` (section ``mnist``): training step
    time and size of the U-Net, the shipped training run (from its meta), the 80-digit
    grid, and the slider's response over 20 moves, cold (every move renders) and warm
    (grids precomputed). Needs the shipped ``mnist_cfg`` weights."""
    from . import pretrained
    from .bench import Row, median_seconds
    from .widgets import DigitGridExplorer, cfg_render

    if threads is not None:
        torch.set_num_threads(threads)
    section = f"mnist ({torch.get_num_threads()} thread(s))"
    p = pretrained.load("mnist_cfg")
    model, schedule, meta = p.model, p.schedule, p.meta
    yield Row(section, "U-Net parameters", sum(q.numel() for q in model.parameters()), "",
              f"{p.path.stat().st_size / 1e6:.2f} MB file")

    trainee = ConditionalUNet(**meta["arch"])
    x0 = torch.rand(128, *IMAGE_SHAPE) * 2 - 1
    labels = torch.randint(NUM_CLASSES + 1, (128,))
    optimizer = torch.optim.Adam(trainee.parameters(), lr=1e-4)

    def step() -> None:
        t = torch.randint(schedule.T, (128,))
        noise = torch.randn_like(x0)
        loss = F.mse_loss(trainee(diffusion.q_sample(x0, t, noise, schedule), t, labels), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    yield Row(section, "training step, batch 128", median_seconds(step, repeats=10), "s")
    acc = meta.get("judged_accuracy", {})
    by_w = acc.get("by_w", {})
    yield Row(section, f"shipped mnist_cfg: {meta['steps']} training steps", meta["seconds"], "s",
              f"{meta['threads']} thread(s) when trained; judged accuracy at w=3 {by_w.get('3', float('nan')):.3f} "
              f"({acc.get('per_class')} per digit, DDIM {acc.get('ddim_steps')})")
    x_T = grid_noise(8, 0)
    seconds = median_seconds(lambda: cfg_grid(model, 3.0, x_T, 20, schedule=schedule), repeats=3)
    yield Row(section, "CFG grid, 80 digits, DDIM 20 steps", seconds, "s", "conditional + null in one batch of 160")

    values = [round(-1.0 + 0.5 * i, 2) for i in range(15)]  # w = -1 ... 6
    moves = [values[(4 * i + 3) % len(values)] for i in range(20)]  # jumps of 2 in w, wrapping
    for mode in ("cold", "warm"):
        explorer = DigitGridExplorer(cfg_render(model, m=4, steps=20, schedule=schedule), values, 0.0,
                                     precompute=mode == "warm")
        explorer.wait()
        times = []
        for v in moves:
            if mode == "cold":
                explorer.cache.clear()  # every move renders its grid
            times.append(explorer.update(v))
        times.sort()
        what = "every move renders" if mode == "cold" else "grids precomputed"
        yield Row(section, f"slider move, 40 digits, DDIM 20 steps ({what})", statistics.median(times), "s",
                  f"median of 20 moves; p95 {times[18]:.3f} s")


def from_scratch_rows(recipe: DigitsRecipe | None = None, threads: int | None = None) -> Iterator:
    """Benchmark rows for section ``mnist-train`` (opt-in: about 7 minutes on 2 idle threads):
    train ``mnist_cfg`` now from ``recipe`` (default :meth:`DigitsRecipe.quick`, the lessons'
    from-scratch recipe) and grade it with the shipped judge, 50 digits per class, DDIM 50.
    The issue's target: judged accuracy of at least 0.90 at ``w = 3`` within 600 s of training."""
    from . import pretrained
    from .bench import Row

    if threads is not None:
        torch.set_num_threads(threads)
    recipe = DigitsRecipe.quick() if recipe is None else recipe
    section = f"mnist-train ({torch.get_num_threads()} thread(s))"
    x, y = load_digits("train")
    judge = pretrained.load("mnist_judge").model
    model, meta = train_mnist_cfg(x, y, recipe)
    by_w = judge_cfg_model(model, judge, recipe.make_schedule(), seed=recipe.seed + 1000)
    yield Row(section, f"train mnist_cfg from scratch: {recipe.steps} steps, batch {recipe.batch_size}",
              meta["seconds"], "s", f"CPU time {meta['cpu_seconds']:.0f} s; target < 600 s")
    for w, acc in by_w.items():
        yield Row(section, f"judged accuracy at w={w} (50 per digit, DDIM 50)", acc, "",
                  "target >= 0.90" if w == "3" else "")
