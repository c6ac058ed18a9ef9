"""One training loop for every denoiser in the course, and one for noise-aware classifiers.

``train_diffusion`` minimises the DDPM loss ``|| eps - eps_theta(x_t, t, y) ||^2``
(Ho et al. 2020, Algorithm 1) with label dropout: each label is replaced by the
null label with probability ``p_uncond`` (Ho & Salimans 2021, Algorithm 1), so
one network learns both ``eps(x_t, y)`` and ``eps(x_t, null)``.
``train_classifier`` fits ``p_phi(y | x_t, t)`` on noised data (Dhariwal & Nichol 2021).

The shipped weights (``course_lib/weights``, read by :mod:`course_lib.pretrained`)
come from recipes run on the command line, one thread, seeded::

    python -m course_lib.train toy              # toy_cfg and toy_classifier, about a minute
    python -m course_lib.train mnist            # mnist_judge, mnist_cfg, mnist_classifier (course_lib.digits)
    python -m course_lib.train toy --seed 1 --out /tmp/w   # another seed, another folder
    python -m course_lib.train --help

``toy`` trains both 2-D models on ``toy.anisotropic()`` with
``make_schedule("linear", 1000)`` (:class:`ToyCFGConfig`,
:class:`ToyClassifierConfig`), prints how close they are to the exact answers
and writes the weights and ``manifest.json`` atomically. Lessons that train from
scratch call :func:`train_toy_cfg` and :func:`train_toy_classifier`, the same
recipe. A new recipe (``mnist``) is one function registered with
``@recipe("mnist", help=...)``; it gets ``--seed``, ``--out``, ``--threads`` and
``--quiet`` for free and saves with :func:`course_lib.pretrained.save`.
"""

from __future__ import annotations

import argparse
import copy
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import guidance, metrics, pretrained, toy
from .diffusion import Schedule, make_schedule, q_sample, sample
from .models import ConditionalMLP, NoisyClassifier2D


@dataclass
class TrainHistory:
    """Per-step losses (and accuracies for classifiers) and the wall-clock time."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check_common(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor | None, schedule: Schedule,
                  steps: int, batch_size: int, lr: float) -> None:
    if getattr(model, "T", schedule.T) != schedule.T:
        raise ValueError(f"schedule has T={schedule.T} but the model was built for T={model.T}")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError("x0 must be a tensor [N, ...] with N >= 1")
    if y is not None and (not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x0.shape[0],)):
        raise ValueError(f"y must be a long tensor of shape [{x0.shape[0]}] (one label per example)")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (the CPU since
    torch 2.4; about 12% faster per step for our small nets), else the foreach one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _cosine_lr(optimizer: torch.optim.Optimizer, steps: int, *, decay: bool = True,
               warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of the learning rate to 10% of its start over ``steps`` (``decay=False``:
    constant), after a linear warm-up from ``lr / warmup_steps`` over ``warmup_steps``."""

    def factor(i: int) -> float:
        warm = min(1.0, (i + 1) / warmup_steps) if warmup_steps else 1.0
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0))) if decay else 1.0
        return warm * cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batch(x0: torch.Tensor, y: torch.Tensor | None, batch_size: int, T: int, generator: torch.Generator,
           device: torch.device):
    """A random minibatch ``(x0, y, t, noise)``; randomness from ``generator`` on the CPU."""
    idx = torch.randint(x0.shape[0], (batch_size,), generator=generator)
    t = torch.randint(T, (batch_size,), generator=generator)
    noise = torch.randn((batch_size, *x0.shape[1:]), generator=generator, dtype=x0.dtype)
    labels = None if y is None else y[idx].to(device)
    return x0[idx].to(device), labels, t.to(device), noise.to(device)


def train_diffusion(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor | None, schedule: Schedule, *,
                    steps: int = 4000, batch_size: int = 256, lr: float = 2e-3, p_uncond: float = 0.15,
                    ema_decay: float | None = None, generator: torch.Generator | None = None,
                    progress: bool = True, desc: str = "training", paired_dropout: bool = False,
                    lr_decay: bool = True, warmup_steps: int = 0) -> TrainHistory:
    """Train ``model(x_t, t, y) -> eps`` in place with the DDPM loss and label dropout.

    ``y=None`` trains an unconditional model (every label is the null label
    ``model.num_classes``). With ``ema_decay`` the model ends holding the
    exponential moving average of its weights (Ho et al. 2020, section 4), the
    decay warmed up as ``min(ema_decay, (1 + step) / (10 + step))`` so that short
    runs forget the random initial weights. Returns the loss history.

    ``paired_dropout=True`` keeps the same share ``p_uncond`` of null labels per
    batch, but the dropped examples are copies of conditional ones with the same
    ``x0``, ``t`` and noise (common random numbers). The expected loss is the same;
    the network sees ``eps(x_t, y)`` and ``eps(x_t, null)`` on matched inputs, so the
    noise in their difference, the part CFG multiplies by ``w``, is much smaller.

    The learning rate decays along a cosine to 10% of ``lr`` (``lr_decay=False``: it
    stays at ``lr``), after a linear warm-up over ``warmup_steps``. The MNIST U-Net
    uses warm-up and no decay (:class:`course_lib.digits.DigitsRecipe`): with decay its
    loss ends lower but its samples follow the label less, which CFG then has to make up."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    if not (isinstance(p_uncond, (int, float)) and 0 <= p_uncond <= 1):
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {ema_decay!r}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    null = model.num_classes
    n_null = round(p_uncond * batch_size) if paired_dropout and y is not None else 0
    paired = 0 < n_null < batch_size
    ema = copy.deepcopy(model).requires_grad_(False) if ema_decay else None
    params, ema_params = list(model.parameters()), list(ema.parameters()) if ema is not None else []
    optimizer = _adam(params, lr)
    scheduler = _cosine_lr(optimizer, steps, decay=lr_decay, warmup_steps=warmup_steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        if paired:  # n_null copies of the first conditional examples, relabelled null
            xb, yb, t, noise = _batch(x0, y, batch_size - n_null, schedule.T, generator, device)
            copies = torch.arange(n_null, device=device) % (batch_size - n_null)
            xb, t, noise = (torch.cat([v, v[copies]]) for v in (xb, t, noise))
            yb = torch.cat([yb, torch.full_like(yb[copies], null)])
        else:
            xb, yb, t, noise = _batch(x0, y, batch_size, schedule.T, generator, device)
            drop = torch.rand(batch_size, generator=generator).to(device) < p_uncond
            yb = torch.full_like(t, null) if yb is None else torch.where(drop, torch.full_like(yb, null), yb)
        loss = F.mse_loss(model(q_sample(xb, t, noise, schedule), t, yb), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            with torch.no_grad():  # ema += (1 - decay) * (model - ema), all tensors at once
                torch._foreach_lerp_(ema_params, params, 1 - min(ema_decay, (1 + step) / (10 + step)))
        history.losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.4f}")
    if ema is not None:
        model.load_state_dict(ema.state_dict())
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def train_classifier(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, schedule: Schedule, *,
                     noisy: bool = True, steps: int = 3000, batch_size: int = 256, lr: float = 2e-3,
                     generator: torch.Generator | None = None, progress: bool = True,
                     desc: str = "training classifier") -> TrainHistory:
    """Train ``model(x_t, t) -> logits`` with cross-entropy on ``x_t = q_sample(x0, t)``,
    ``t`` uniform (``noisy=True``), or on clean ``x0`` with ``t = 0`` (``noisy=False``,
    the classifier that has never seen noise). Returns losses and batch accuracies."""
    _check_common(model, x0, y, schedule, steps, batch_size, lr)
    if y is None:
        raise ValueError("y must be given: a classifier needs labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    optimizer = _adam(model.parameters(), lr)
    scheduler = _cosine_lr(optimizer, steps)
    history, start = TrainHistory(), time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        xb, yb, t, noise = _batch(x0, y, batch_size, schedule.T, generator, device)
        if noisy:
            xb = q_sample(xb, t, noise, schedule)
        else:
            t = torch.zeros_like(t)
        logits = model(xb, t)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        history.losses.append(loss.item())
        history.accuracies.append((logits.argmax(1) == yb).float().mean().item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history.losses[-50:]) / len(history.losses[-50:]):.3f}")
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


# --- recipes: the commands that make the shipped weights ------------------------------------


@dataclass(frozen=True)
class ToyCFGConfig:
    """The ``toy_cfg`` recipe. ``steps * batch_size`` fresh points are drawn from the
    mixture (no example is reused), the dropped labels are paired with conditional
    copies (``paired_dropout``), and the EMA weights are kept. About 45 s on one thread.
    Strong guidance (``w = 3``) visits sparse regions of ``x_t`` where the network
    converges last: with 6000 steps some seeds were twice as far from the exact CFG
    samples at ``w = 3`` as with 9000."""

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


def _defaults(mixture: toy.GaussianMixture2D | None, schedule: Schedule | None):
    return mixture if mixture is not None else toy.anisotropic(), \
        schedule if schedule is not None else make_schedule("linear", 1000)


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a network with initial weights from ``seed``, leaving torch's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_toy_cfg(mixture: toy.GaussianMixture2D | None = None, schedule: Schedule | None = None, *,
                  config: ToyCFGConfig | None = None, seed: int = 0,
                  progress: bool = True) -> tuple[ConditionalMLP, TrainHistory]:
    """Train the ``toy_cfg`` model from scratch (defaults: ``toy.anisotropic()``, the
    linear schedule with ``T = 1000``, :data:`TOY_CFG`). Returns the model in eval
    mode and its history."""
    mixture, schedule = _defaults(mixture, schedule)
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
    mixture, schedule = _defaults(mixture, schedule)
    config = config if config is not None else TOY_CLASSIFIER
    generator = torch.Generator().manual_seed(seed)
    x0, y = mixture.sample(config.steps * config.batch_size, generator=generator)
    model = seeded_init(seed, lambda: NoisyClassifier2D(mixture.num_classes, schedule.T, config.width,
                                                         config.depth))
    history = train_classifier(model, x0, y, schedule, noisy=True, steps=config.steps,
                               batch_size=config.batch_size, lr=config.lr, generator=generator,
                               progress=progress, desc="toy_classifier")
    return model, history


@torch.no_grad()
def toy_cfg_report(model: torch.nn.Module, mixture: toy.GaussianMixture2D, schedule: Schedule, *,
                   ws: tuple[float, ...] = (0.0, 3.0), n: int = 2000, steps: int | None = 50,
                   seed: int = 0) -> list[dict]:
    """Per class ``k`` and weight ``w``: the sliced Wasserstein distance between the
    model's CFG samples and the exact ones, and the noise floor (two exact sets).
    The exact reference is ``p(x | y=k)`` itself at ``w = 0`` and the exact CFG
    through the same sampler (DDIM with ``eta = 1``; ``steps=None``: DDPM) otherwise."""
    K, rows = mixture.num_classes, []
    for w in ws:
        for k in range(K):
            gens = [torch.Generator().manual_seed(seed + 1000 * i + 10 * k + int(4 * w)) for i in range(3)]
            draw = lambda fn, g: sample(fn, (n, 2), schedule, steps=steps, eta=1.0, generator=g)
            learned = draw(guidance.model_cfg_eps_fn(model, k, w, K), gens[0])
            if w == 0.0:
                ref_a, ref_b = (mixture.sample(n, y=k, generator=g)[0] for g in gens[1:])
            else:
                exact = guidance.cfg(mixture.eps_fn(schedule, k), mixture.eps_fn(schedule), w)
                ref_a, ref_b = (draw(exact, g) for g in gens[1:])
            rows.append({"class": k, "w": w, "steps": steps, "n": n,
                         "sw": round(metrics.sliced_wasserstein(learned, ref_a), 4),
                         "floor": round(metrics.sliced_wasserstein(ref_a, ref_b), 4)})
    return rows


@torch.no_grad()
def toy_classifier_report(model: torch.nn.Module, mixture: toy.GaussianMixture2D, schedule: Schedule, *,
                          ts: tuple[int, ...] = (0, 100, 200, 300, 500, 999), n: int = 20_000,
                          seed: int = 0) -> list[dict]:
    """Accuracy of the classifier and of the exact Bayes posterior on ``x_t``, at each ``t``."""
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


@dataclass(frozen=True)
class Recipe:
    """A command-line recipe: ``run(args, command)`` trains and saves, returning the files written."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, str], list[Path]]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register ``fn(args, command) -> list[Path]`` as ``python -m course_lib.train NAME``."""

    def register(fn: Callable[[argparse.Namespace, str], list[Path]]):
        RECIPES[name] = Recipe(name, help, fn, add_arguments)
        return fn

    return register


def _common_meta(args: argparse.Namespace, command: str, history: TrainHistory, config) -> dict:
    return {"command": command, "seed": args.seed, "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "seconds": round(history.seconds, 1),
            "final_loss": round(sum(history.losses[-200:]) / len(history.losses[-200:]), 5),
            "config": asdict(config), "steps": config.steps, "batch_size": config.batch_size}


@recipe("toy", "the 2-D models toy_cfg and toy_classifier, on toy.anisotropic() (about a minute)")
def _toy(args: argparse.Namespace, command: str) -> list[Path]:
    mixture, schedule = _defaults(None, None)
    common = {"schedule": {"kind": "linear", "T": schedule.T}, "mixture": mixture,
              "data": "course_lib.toy.anisotropic()"}
    say = (lambda *a: None) if args.quiet else print

    cpu = time.process_time()
    model, history = train_toy_cfg(mixture, schedule, seed=args.seed, progress=not args.quiet)
    cpu = time.process_time() - cpu
    say(f"toy_cfg: {history.seconds:.1f} s ({cpu:.1f} s CPU) on {torch.get_num_threads()} thread(s), "
        f"{sum(p.numel() for p in model.parameters())} parameters")
    report = toy_cfg_report(model, mixture, schedule, seed=args.seed)
    for row in report:
        say(f"  class {row['class']} w={row['w']:g}: SW {row['sw']:.3f}  (floor {row['floor']:.3f})")
    arch = {"num_classes": model.num_classes, "T": model.T, "width": model.width, "depth": model.depth}
    meta = {**_common_meta(args, command, history, TOY_CFG), **common, "arch": arch, "quality": report,
            "cpu_seconds": round(cpu, 1)}
    paths = [pretrained.save("toy_cfg", model, meta, command=command, root=args.out)]

    cpu = time.process_time()
    clf, history = train_toy_classifier(mixture, schedule, seed=args.seed, progress=not args.quiet)
    cpu = time.process_time() - cpu
    say(f"toy_classifier: {history.seconds:.1f} s ({cpu:.1f} s CPU)")
    report = toy_classifier_report(clf, mixture, schedule, seed=args.seed)
    for row in report:
        say(f"  t={row['t']:4d}: accuracy {row['accuracy']:.3f}  (Bayes {row['bayes_accuracy']:.3f})")
    arch = {"num_classes": clf.num_classes, "T": clf.T, "width": clf.width, "depth": clf.depth}
    meta = {**_common_meta(args, command, history, TOY_CLASSIFIER), **common, "arch": arch,
            "accuracy": report, "cpu_seconds": round(cpu, 1)}
    paths.append(pretrained.save("toy_classifier", clf, meta, command=command, root=args.out))
    for path in paths:
        say(f"wrote {path}")
    return paths


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where to train: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, ...")


@recipe("mnist", "the MNIST models mnist_cfg, mnist_classifier and the judge mnist_judge "
                 "(about 30 minutes on one CPU thread; on a CUDA GPU when there is one)", _device_argument)
def _mnist(args: argparse.Namespace, command: str) -> list[Path]:
    from . import digits  # digits imports this module

    say = (lambda *a: None) if args.quiet else print
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    say(f"training on {device}")
    paths = digits.train_all(digits.DigitsRecipe(seed=args.seed), root=args.out, command=command,
                             progress=not args.quiet, say=say, device=device)
    for path in paths:
        say(f"wrote {path}")
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.train RECIPE [--seed S] [--out DIR] [--threads N] [--quiet]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib.train",
                                     description="Train and save the shipped pretrained weights.")
    sub = parser.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for r in RECIPES.values():
        p = sub.add_parser(r.name, help=r.help, description=r.help)
        p.add_argument("--seed", type=int, default=0, help="seed of the data, noise and initial weights (0)")
        p.add_argument("--out", type=Path, default=None, help="weights folder (default: course_lib/weights)")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest for small nets)")
        p.add_argument("--quiet", action="store_true", help="no progress bars or report")
        if r.add_arguments is not None:
            r.add_arguments(p)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    command = " ".join(["python -m course_lib.train", *map(shlex.quote, argv)])
    RECIPES[args.recipe].run(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
