"""The training recipes: the settings and seeds that make every shipped network, and
:func:`load_or_train`, the one call a lesson makes to get a network (shipped or retrained).

2-D (``python -m course_lib.recipes toy``): ``toy_cfg``, a :class:`~course_lib.models.ConditionalMLP`
trained with label dropout on ``toy.anisotropic()``, and ``toy_classifier``, a noise-aware
:class:`~course_lib.models.NoisyClassifier2D`, both with ``make_schedule("linear", 1000)``
(:class:`ToyCFGConfig`, :class:`ToyClassifierConfig`).

MNIST (``python -m course_lib.recipes mnist``), all from :class:`DigitsRecipe`:

- ``mnist_cfg``: a :class:`~course_lib.unet.ConditionalUNet` trained with label dropout, so one
  network gives ``eps(x_t, y)`` and ``eps(x_t, null)`` for CFG (Ho & Salimans 2021, Algorithm 1);
- ``mnist_classifier``: a :class:`~course_lib.unet.NoisyImageClassifier` ``p_phi(y | x_t, t)``
  for classifier guidance (Dhariwal & Nichol 2021);
- ``mnist_judge``: an :class:`~course_lib.unet.ImageClassifier` trained on clean digits only. It
  never steers sampling; it grades it (:mod:`course_lib.sample_metrics`);
- ``mnist_cfg_weak`` (``python -m course_lib.recipes mnist-weak``): a smaller, briefly trained
  copy of ``mnist_cfg`` (:meth:`DigitsRecipe.weak`), the "bad model" that autoguidance
  extrapolates away from (Karras et al. 2024);
- ``mnist_cfg_distilled`` (``python -m course_lib.recipes mnist-distilled``): ``mnist_cfg`` under CFG
  distilled into one network that takes ``w`` as an input (Meng et al. 2023,
  :class:`~course_lib.distillation.DistillRecipe`).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import classifier_metrics, data, distillation, pretrained, sample_metrics, toy, validate
from ..device import pick_device
from ..diffusion import Schedule, make_schedule
from ..models import ConditionalMLP, NoisyClassifier2D
from ..training import TrainHistory, seeded_init, train_classifier, train_diffusion, train_image_classifier
from ..unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier

COMMANDS = {"toy": "python -m course_lib.recipes toy", "mnist": "python -m course_lib.recipes mnist",
            "mnist-weak": "python -m course_lib.recipes mnist-weak",
            "mnist-distilled": "python -m course_lib.recipes mnist-distilled"}


def training_meta(config: Any, *, arch: dict, schedule: dict, command: str, seed: int, steps: int, batch_size: int,
                  history: TrainHistory, cpu_seconds: float, device: str | torch.device = "cpu", **extra) -> dict:
    """The plain-data meta of a trained network (one builder for every recipe), for
    :func:`course_lib.pretrained.save`: how it was built (``arch``, ``schedule``, ``config``),
    made (``command``, ``seed``) and trained (``seconds`` of wall-clock and ``cpu_seconds`` of
    CPU time: on a shared machine they differ; ``threads``, ``device``, ``torch``, the final
    loss and, for classifiers, the final batch accuracy, each over the last 200 steps)."""
    tail = history.losses[-200:]
    meta = {"arch": arch, "schedule": schedule, "command": command, "seed": seed, "steps": steps,
            "batch_size": batch_size, "seconds": round(history.seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "threads": torch.get_num_threads(), "device": str(device), "torch": str(torch.__version__),
            "machine": platform.machine(), "config": asdict(config), "final_loss": round(sum(tail) / len(tail), 5)}
    if history.accuracies:
        meta["final_batch_accuracy"] = sum(history.accuracies[-200:]) / len(history.accuracies[-200:])
    return {**meta, **extra}


# --------------------------------------------------------------------------- 2-D

@dataclass(frozen=True)
class ToyCFGConfig:
    """The ``toy_cfg`` recipe. ``steps * batch_size`` fresh points are drawn from the
    mixture (no example is reused), the dropped labels are paired with conditional
    copies (``paired_dropout``), and the EMA weights are kept. Strong guidance
    (``w = 3``) visits sparse regions of ``x_t`` where the network converges last,
    hence more steps than the loss alone would ask for."""

    width: int = 64
    depth: int = 3
    steps: int = 9000
    batch_size: int = 512
    lr: float = 3e-3
    p_uncond: float = 0.2
    ema_decay: float = 0.999
    paired_dropout: bool = True


@dataclass(frozen=True)
class ToyClassifierConfig:
    """The ``toy_classifier`` recipe: a noise-aware classifier on fresh noised points."""

    width: int = 64
    depth: int = 2
    steps: int = 2000
    batch_size: int = 512
    lr: float = 2e-3


TOY_CFG = ToyCFGConfig()
TOY_CLASSIFIER = ToyClassifierConfig()


def toy_defaults(mixture: toy.GaussianMixture2D | None = None,
                 schedule: Schedule | None = None) -> tuple[toy.GaussianMixture2D, Schedule]:
    """The 2-D recipes' data and schedule: ``toy.anisotropic()`` and ``make_schedule("linear", 1000)``."""
    return mixture if mixture is not None else toy.anisotropic(), \
        schedule if schedule is not None else make_schedule("linear", 1000)


def train_toy_cfg(mixture: toy.GaussianMixture2D | None = None, schedule: Schedule | None = None, *,
                  config: ToyCFGConfig | None = None, seed: int = 0,
                  progress: bool = True) -> tuple[ConditionalMLP, TrainHistory]:
    """Train the ``toy_cfg`` model from scratch (defaults: :func:`toy_defaults`, :data:`TOY_CFG`).
    Returns the model in eval mode and its history."""
    mixture, schedule = toy_defaults(mixture, schedule)
    config = config if config is not None else TOY_CFG
    generator = torch.Generator().manual_seed(seed)
    x0, y = mixture.sample(config.steps * config.batch_size, generator=generator)
    model = seeded_init(seed, lambda: ConditionalMLP(mixture.num_classes, schedule.T, config.width, config.depth))
    history = train_diffusion(model, x0, y, schedule, steps=config.steps, batch_size=config.batch_size,
                              lr=config.lr, p_uncond=config.p_uncond, ema_decay=config.ema_decay,
                              paired_dropout=config.paired_dropout, generator=generator, progress=progress,
                              desc="toy_cfg")
    return model, history


def train_toy_classifier(mixture: toy.GaussianMixture2D | None = None, schedule: Schedule | None = None, *,
                         config: ToyClassifierConfig | None = None, seed: int = 0,
                         progress: bool = True) -> tuple[NoisyClassifier2D, TrainHistory]:
    """Train the ``toy_classifier`` noise-aware classifier from scratch (same defaults,
    :data:`TOY_CLASSIFIER`)."""
    mixture, schedule = toy_defaults(mixture, schedule)
    config = config if config is not None else TOY_CLASSIFIER
    generator = torch.Generator().manual_seed(seed)
    x0, y = mixture.sample(config.steps * config.batch_size, generator=generator)
    model = seeded_init(seed, lambda: NoisyClassifier2D(mixture.num_classes, schedule.T, config.width,
                                                         config.depth))
    history = train_classifier(model, x0, y, schedule, noisy=True, steps=config.steps,
                               batch_size=config.batch_size, lr=config.lr, generator=generator,
                               progress=progress, desc="toy_classifier")
    return model, history


def train_toy(name: str, *, seed: int = 0, command: str = COMMANDS["toy"],
              progress: bool = True) -> tuple[torch.nn.Module, dict, TrainHistory]:
    """Train ``"toy_cfg"`` or ``"toy_classifier"`` by its recipe; returns the model, its meta
    (:func:`training_meta` plus the ``mixture`` it learned) and its history."""
    mixture, schedule = toy_defaults()
    cpu = time.process_time()
    if name == "toy_cfg":
        model, history = train_toy_cfg(mixture, schedule, seed=seed, progress=progress)
        config = TOY_CFG
    elif name == "toy_classifier":
        model, history = train_toy_classifier(mixture, schedule, seed=seed, progress=progress)
        config = TOY_CLASSIFIER
    else:
        raise ValueError(f"name must be 'toy_cfg' or 'toy_classifier', got {name!r}")
    arch = {"num_classes": model.num_classes, "T": model.T, "width": model.width, "depth": model.depth}
    meta = training_meta(config, arch=arch, schedule={"kind": "linear", "T": schedule.T}, command=command, seed=seed,
                         steps=config.steps, batch_size=config.batch_size, history=history,
                         cpu_seconds=time.process_time() - cpu, mixture=mixture,
                         data="course_lib.toy.anisotropic()")
    return model, meta, history


# --------------------------------------------------------------------------- MNIST

@dataclass(frozen=True)
class DigitsRecipe:
    """Everything that decides the MNIST networks; the shipped weights use the defaults.

    :meth:`quick` is the from-scratch recipe of the lessons (fewer steps, the same everything
    else); :meth:`weak` the deliberately weak guide model of autoguidance."""

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
            validate.integer(getattr(self, name), name, minimum=1 if name in counts else 0)
        for name in ("lr", "classifier_lr", "judge_lr"):
            validate.number(getattr(self, name), name, above=0)
        if not 0 <= self.p_uncond <= 1:
            raise ValueError(f"p_uncond must lie in [0, 1], got {self.p_uncond!r}")
        if not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {self.ema_decay!r}")

    @classmethod
    def quick(cls, seed: int = 0) -> DigitsRecipe:
        """The lessons' from-scratch recipe: the shipped one with fewer steps (the bench's
        ``mnist-train`` section times it and grades its samples)."""
        return cls(seed=seed, steps=4000, classifier_steps=1500, judge_steps=1000)

    @classmethod
    def weak(cls, seed: int = 0) -> DigitsRecipe:
        """The weak guide of autoguidance: half the channels, an eighth of the steps, and an EMA
        of decay 0.99 (0.999 would barely move from the random start in 750 steps)."""
        return cls(seed=seed, base_channels=16, steps=750, ema_decay=0.99)

    def make_schedule(self) -> Schedule:
        return make_schedule(self.schedule, self.T)

    def schedule_meta(self) -> dict:
        return {"kind": self.schedule, "T": self.T}


def train_mnist_cfg(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                    progress: bool = True, device: str | torch.device | None = "cpu",
                    command: str = COMMANDS["mnist"], desc: str = "mnist_cfg"
                    ) -> tuple[ConditionalUNet, dict, TrainHistory]:
    """Train the conditional U-Net with label dropout ``p_uncond`` (one network for CFG) by
    :func:`course_lib.training.train_diffusion` (DDPM loss, Adam with a warm-up and, by default, a
    constant learning rate, EMA weights) on ``device`` (None: CUDA, then MPS, then the CPU).
    Returns the model in eval mode, on the CPU, its meta and its history.

    Args:
        x0: ``[N, 1, 28, 28]`` training digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``."""
    data.check_digits(x0, y)
    dev = pick_device(device)
    arch = {"num_classes": data.NUM_CLASSES, "T": recipe.T, "base_channels": recipe.base_channels,
            "emb_dim": recipe.emb_dim}
    model = seeded_init(recipe.seed, lambda: ConditionalUNet(**arch)).to(dev)
    cpu = time.process_time()
    history = train_diffusion(model, x0, y, recipe.make_schedule(), steps=recipe.steps,
                              batch_size=recipe.batch_size, lr=recipe.lr, p_uncond=recipe.p_uncond,
                              ema_decay=recipe.ema_decay, lr_decay=recipe.lr_decay, warmup_steps=recipe.warmup_steps,
                              generator=torch.Generator().manual_seed(recipe.seed), progress=progress, desc=desc)
    meta = training_meta(recipe, arch=arch, schedule=recipe.schedule_meta(), command=command, seed=recipe.seed,
                         steps=recipe.steps, batch_size=recipe.batch_size, history=history,
                         cpu_seconds=time.process_time() - cpu, device=dev, data_source=data.last_source(),
                         num_train=int(x0.shape[0]), lr=recipe.lr, p_uncond=recipe.p_uncond,
                         ema_decay=recipe.ema_decay)
    return model.cpu(), meta, history


def train_mnist_classifier(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                           progress: bool = True, device: str | torch.device | None = "cpu"
                           ) -> tuple[NoisyImageClassifier, dict, TrainHistory]:
    """Train the noise-aware classifier ``p_phi(y | x_t, t)`` by
    :func:`course_lib.training.train_classifier` (``t`` uniform, cross-entropy) on ``device``;
    returns it on the CPU, its meta and its history.

    Args:
        x0: ``[N, 1, 28, 28]`` training digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``."""
    data.check_digits(x0, y)
    dev = pick_device(device)
    arch = {"num_classes": data.NUM_CLASSES, "T": recipe.T, "base_channels": recipe.base_channels,
            "emb_dim": recipe.emb_dim}
    model = seeded_init(recipe.seed + 1, lambda: NoisyImageClassifier(**arch)).to(dev)
    cpu = time.process_time()
    history = train_classifier(model, x0, y, recipe.make_schedule(), noisy=True, steps=recipe.classifier_steps,
                               batch_size=recipe.classifier_batch_size, lr=recipe.classifier_lr,
                               generator=torch.Generator().manual_seed(recipe.seed + 1), progress=progress,
                               desc="mnist_classifier")
    meta = training_meta(recipe, arch=arch, schedule=recipe.schedule_meta(), command=COMMANDS["mnist"],
                         seed=recipe.seed, steps=recipe.classifier_steps, batch_size=recipe.classifier_batch_size,
                         history=history, cpu_seconds=time.process_time() - cpu, device=dev,
                         data_source=data.last_source(), num_train=int(x0.shape[0]), lr=recipe.classifier_lr)
    return model.cpu(), meta, history


def train_judge(x0: torch.Tensor, y: torch.Tensor, recipe: DigitsRecipe = DigitsRecipe(), *,
                progress: bool = True, device: str | torch.device | None = "cpu"
                ) -> tuple[ImageClassifier, dict, TrainHistory]:
    """Train the clean judge :class:`~course_lib.unet.ImageClassifier` on clean digits shifted at
    random by up to ``judge_shift`` pixels (:func:`course_lib.training.train_image_classifier`),
    on ``device``; returns it on the CPU, its meta and its history.

    Args:
        x0: ``[N, 1, 28, 28]`` training digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``."""
    data.check_digits(x0, y)
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(recipe.seed + 2)
    model = seeded_init(recipe.seed + 2, lambda: ImageClassifier(num_classes=data.NUM_CLASSES)).to(dev)
    cpu = time.process_time()
    history = train_image_classifier(model, x0, y, steps=recipe.judge_steps, batch_size=recipe.judge_batch_size,
                                     lr=recipe.judge_lr, max_shift=recipe.judge_shift, generator=generator,
                                     progress=progress, desc="mnist_judge")
    meta = training_meta(recipe, arch={"num_classes": data.NUM_CLASSES, "feature_dim": model.feature_dim},
                         schedule=recipe.schedule_meta(), command=COMMANDS["mnist"], seed=recipe.seed,
                         steps=recipe.judge_steps, batch_size=recipe.judge_batch_size, history=history,
                         cpu_seconds=time.process_time() - cpu, device=dev, data_source=data.last_source(),
                         num_train=int(x0.shape[0]), lr=recipe.judge_lr, shift=recipe.judge_shift)
    return model.cpu(), meta, history


def train_all(recipe: DigitsRecipe = DigitsRecipe(), *, root=None, command: str = COMMANDS["mnist"],
              progress: bool = True, say: Callable[..., None] = print, eval_per_class: int = 50,
              eval_steps: int = 50, device: str | torch.device | None = "cpu") -> list[Path]:
    """Train the judge, ``mnist_cfg`` and ``mnist_classifier`` from ``recipe`` on ``device`` and
    write them with :func:`course_lib.pretrained.save` (to ``root``, default the shipped weights
    folder), recording ``command`` in each meta and the manifest; grading runs on the CPU.
    Returns the paths written.

    The judge comes first so that ``mnist_cfg``'s meta can record the judged accuracy
    its samples reach (``eval_per_class`` per digit, DDIM ``eval_steps``, ``w = 0, 1, 3``)."""
    x, y = data.load_mnist("train")
    x_test, y_test = data.load_mnist("test")
    schedule = recipe.make_schedule()
    paths = []

    judge, meta, _ = train_judge(x, y, recipe, progress=progress, device=device)
    meta["test_accuracy"] = sample_metrics.judged_accuracy(judge, x_test, y_test)
    paths.append(pretrained.save("mnist_judge", judge, meta, command=command, root=root))
    say(f"mnist_judge: {meta['seconds']:.0f} s, accuracy on the {len(x_test)} test digits {meta['test_accuracy']:.3f}")

    model, meta, _ = train_mnist_cfg(x, y, recipe, progress=progress, device=device)
    by_w = sample_metrics.judge_cfg_model(model, judge, schedule, per_class=eval_per_class, steps=eval_steps,
                                    seed=recipe.seed + 1000)
    meta["judged_accuracy"] = {"by_w": by_w, "per_class": eval_per_class, "ddim_steps": eval_steps}
    paths.append(pretrained.save("mnist_cfg", model, meta, command=command, root=root))
    say(f"mnist_cfg: {meta['seconds']:.0f} s; judged accuracy (DDIM {eval_steps}, {eval_per_class} per digit) "
        + ", ".join(f"w={w}: {a:.3f}" for w, a in by_w.items()))

    classifier, meta, _ = train_mnist_classifier(x, y, recipe, progress=progress, device=device)
    meta["test_accuracy_by_t"] = classifier_metrics.noisy_accuracy(classifier, x_test, y_test, schedule)
    paths.append(pretrained.save("mnist_classifier", classifier, meta, command=command, root=root))
    say(f"mnist_classifier: {meta['seconds']:.0f} s; test accuracy by t "
        + ", ".join(f"{t}: {a:.3f}" for t, a in meta["test_accuracy_by_t"].items()))
    return paths


def train_weak(recipe: DigitsRecipe | None = None, *, root=None, command: str = COMMANDS["mnist-weak"],
               progress: bool = True, say: Callable[..., None] = print, eval_per_class: int = 50,
               eval_steps: int = 50, device: str | torch.device | None = "cpu") -> Path:
    """Train ``mnist_cfg_weak`` (default :meth:`DigitsRecipe.weak`) and write it with
    :func:`course_lib.pretrained.save`, its meta recording the judged accuracy (by the shipped
    judge) its samples reach at ``w = 0, 1, 3``. Returns the path written."""
    recipe = DigitsRecipe.weak() if recipe is None else recipe
    x, y = data.load_mnist("train")
    model, meta, _ = train_mnist_cfg(x, y, recipe, progress=progress, device=device, command=command,
                                  desc="mnist_cfg_weak")
    judge = pretrained.load("mnist_judge").model
    by_w = sample_metrics.judge_cfg_model(model, judge, recipe.make_schedule(), per_class=eval_per_class,
                                    steps=eval_steps, seed=recipe.seed + 1000)
    meta["judged_accuracy"] = {"by_w": by_w, "per_class": eval_per_class, "ddim_steps": eval_steps}
    path = pretrained.save("mnist_cfg_weak", model, meta, command=command, root=root)
    say(f"mnist_cfg_weak: {meta['seconds']:.0f} s; judged accuracy (DDIM {eval_steps}, {eval_per_class} per digit) "
        + ", ".join(f"w={w}: {a:.3f}" for w, a in by_w.items()))
    return path


def train_distilled(recipe: distillation.DistillRecipe = distillation.DistillRecipe(), *, progress: bool = True,
                    command: str = COMMANDS["mnist-distilled"]) -> tuple[torch.nn.Module, dict, TrainHistory]:
    """Distil the shipped ``mnist_cfg`` into ``mnist_cfg_distilled`` by ``recipe`` on the CPU;
    returns the student, its meta (:func:`training_meta`) and its history."""
    teacher = pretrained.load("mnist_cfg")
    x, y = data.load_mnist("train")
    cpu = time.process_time()
    model, history = distillation.train_distilled(teacher.model, x, y, teacher.schedule, recipe, progress=progress)
    arch = {**teacher.meta["arch"], "w_max": recipe.w_max}
    meta = training_meta(recipe, arch=arch, schedule=teacher.meta["schedule"], command=command, seed=recipe.seed,
                         steps=recipe.steps, batch_size=recipe.batch_size, history=history,
                         cpu_seconds=time.process_time() - cpu, teacher="mnist_cfg", data_source=data.last_source(),
                         num_train=int(x.shape[0]))
    return model, meta, history


# --------------------------------------------------------------------------- one call for the lessons

def _train_mnist(name: str, device: str | torch.device | None,
                 progress: bool) -> tuple[torch.nn.Module, dict, TrainHistory]:
    if name == "mnist_cfg_distilled":
        return train_distilled(distillation.DistillRecipe.quick(), progress=progress)
    recipe = DigitsRecipe.weak() if name == "mnist_cfg_weak" else DigitsRecipe.quick()
    x, y = data.load_mnist("train")
    if name in ("mnist_cfg", "mnist_cfg_weak"):
        return train_mnist_cfg(x, y, recipe, progress=progress, device=device, desc=name)
    if name == "mnist_classifier":
        return train_mnist_classifier(x, y, recipe, progress=progress, device=device)
    return train_judge(x, y, recipe, progress=progress, device=device)


def load_or_train(name: str, *, from_scratch: bool = False, device: str | torch.device | None = None,
                  progress: bool = True, threads: int | None = None) -> pretrained.Pretrained:
    """The network ``name`` as :func:`course_lib.pretrained.load` returns it (``.model``,
    ``.schedule``, ``.num_classes``, ``.meta``): the shipped weights, or with
    ``from_scratch=True`` trained here by its recipe (``.path`` None, ``.history`` its
    :class:`~course_lib.training.TrainHistory`: per-step losses, seconds).

    From scratch, 2-D networks train on the CPU by the shipped recipe and seed; MNIST networks
    by :meth:`DigitsRecipe.quick` (``mnist_cfg_weak``: :meth:`DigitsRecipe.weak`; ``mnist_cfg_distilled``:
    the shipped teacher distilled by :meth:`~course_lib.distillation.DistillRecipe.quick`, CPU) on ``device``
    (None: CUDA, then MPS, then the CPU), with ``threads`` torch threads during training
    (None: as set), restored afterwards."""
    if name not in pretrained.REGISTRY:
        raise ValueError(f"name must be one of {sorted(pretrained.REGISTRY)}, got {name!r}")
    validate.flag(from_scratch, "from_scratch")
    if threads is not None:
        validate.integer(threads, "threads", minimum=1, hint=" or None")
    if not from_scratch:
        return pretrained.load(name)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if name.startswith("toy_"):
            model, meta, history = train_toy(name, progress=progress)
        else:
            model, meta, history = _train_mnist(name, device, progress)
    finally:
        torch.set_num_threads(previous)
    schedule = make_schedule(meta["schedule"]["kind"], meta["schedule"]["T"])
    return pretrained.Pretrained(name=name, model=model.eval(), schedule=schedule,
                                 num_classes=int(meta["arch"]["num_classes"]), meta=meta, path=None,
                                 history=history)
