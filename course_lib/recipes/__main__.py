"""The command that makes the shipped weights: ``python -m course_lib.recipes RECIPE``.

Each recipe (the settings are in :mod:`course_lib.recipes`) trains, prints how close the
result is to what it should be, and writes the weights and ``manifest.json`` atomically
with :func:`course_lib.pretrained.save`, recording this exact command line::

    python -m course_lib.recipes toy              # toy_cfg and toy_classifier
    python -m course_lib.recipes mnist            # mnist_judge, mnist_cfg, mnist_classifier
    python -m course_lib.recipes mnist-weak       # mnist_cfg_weak, autoguidance's weak guide
    python -m course_lib.recipes mnist-distilled  # mnist_cfg_distilled, mnist_cfg with w as an input
    python -m course_lib.recipes toy --seed 1 --out /tmp/w   # another seed, another folder
    python -m course_lib.recipes --help

A new recipe is one function registered with ``@recipe("name", help=...)``; it gets
``--seed``, ``--out``, ``--threads`` and ``--quiet`` for free. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import classifier_metrics, distillation, pretrained, recipes, sample_metrics
from ..device import pick_device
from ..diffusion import make_schedule


@dataclass(frozen=True)
class Recipe:
    """A command-line recipe: ``run(args, command)`` trains and saves, returning the files written."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, str], list[Path]]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register ``fn(args, command) -> list[Path]`` as ``python -m course_lib.recipes NAME``."""

    def register(fn: Callable[[argparse.Namespace, str], list[Path]]):
        RECIPES[name] = Recipe(name, help, fn, add_arguments)
        return fn

    return register


def _say(args: argparse.Namespace) -> Callable[..., None]:
    """``print``, or nothing with ``--quiet``."""
    return (lambda *a: None) if args.quiet else print


@recipe("toy", "the 2-D models toy_cfg and toy_classifier, on toy.anisotropic()")
def _toy(args: argparse.Namespace, command: str) -> list[Path]:
    say = _say(args)
    paths = []
    for name in ("toy_cfg", "toy_classifier"):
        model, meta, _ = recipes.train_toy(name, seed=args.seed, command=command, progress=not args.quiet)
        mixture, schedule = meta["mixture"], make_schedule("linear", meta["schedule"]["T"])
        say(f"{name}: {meta['seconds']:.1f} s ({meta['cpu_seconds']:.1f} s CPU) on {meta['threads']} thread(s), "
            f"{sum(p.numel() for p in model.parameters())} parameters")
        if name == "toy_cfg":
            meta["quality"] = sample_metrics.toy_cfg_report(model, mixture, schedule, seed=args.seed)
            for row in meta["quality"]:
                say(f"  class {row['class']} w={row['w']:g}: SW {row['sw']:.3f}  (floor {row['floor']:.3f})")
        else:
            meta["accuracy"] = classifier_metrics.toy_classifier_report(model, mixture, schedule, seed=args.seed)
            for row in meta["accuracy"]:
                say(f"  t={row['t']:4d}: accuracy {row['accuracy']:.3f}  (Bayes {row['bayes_accuracy']:.3f})")
        paths.append(pretrained.save(name, model, meta, command=command, root=args.out))
    for path in paths:
        say(f"wrote {path}")
    return paths


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where to train: auto (CUDA, then MPS, then the CPU), cpu, cuda, mps, ...")


@recipe("mnist", "the MNIST models mnist_cfg, mnist_classifier and the judge mnist_judge "
                 "(the longest recipe: on a GPU when there is one)", _device_argument)
def _mnist(args: argparse.Namespace, command: str) -> list[Path]:
    device, say = pick_device(args.device), _say(args)
    say(f"training on {device}")
    paths = recipes.train_all(recipes.DigitsRecipe(seed=args.seed), root=args.out, command=command,
                              progress=not args.quiet, say=say, device=device)
    for path in paths:
        say(f"wrote {path}")
    return paths


@recipe("mnist-weak", "mnist_cfg_weak: a small, briefly trained mnist_cfg, the weak guide of autoguidance "
                      "(needs the shipped mnist_judge to grade it)", _device_argument)
def _mnist_weak(args: argparse.Namespace, command: str) -> list[Path]:
    device, say = pick_device(args.device), _say(args)
    say(f"training on {device}")
    path = recipes.train_weak(recipes.DigitsRecipe.weak(seed=args.seed), root=args.out, command=command,
                              progress=not args.quiet, say=say, device=device)
    say(f"wrote {path}")
    return [path]


@recipe("mnist-distilled", "mnist_cfg_distilled: the shipped mnist_cfg under CFG distilled into one network that "
                           "takes w as an input (Meng et al. 2023; needs the shipped mnist_cfg and mnist_judge; CPU)")
def _mnist_distilled(args: argparse.Namespace, command: str) -> list[Path]:
    say = _say(args)
    model, meta, _ = recipes.train_distilled(distillation.DistillRecipe(seed=args.seed), progress=not args.quiet,
                                             command=command)
    say(f"mnist_cfg_distilled: {meta['seconds']:.0f} s ({meta['cpu_seconds']:.0f} s CPU) on {meta['threads']} "
        f"thread(s), final loss {meta['final_loss']:.5f}")
    teacher, judge = pretrained.load("mnist_cfg"), pretrained.load("mnist_judge")
    meta["versus_teacher"] = report = distillation.compare_with_teacher(model, teacher.model, judge.model,
                                                                        teacher.schedule)
    for w, row in report["by_w"].items():
        say(f"  w={w}: " + "; ".join(f"{k} accuracy {v['accuracy']:.3f} +- {v['se']:.3f}, diversity "
                                     f"{v['diversity']:.2f}, {v['calls_per_sample']:.0f} calls/sample"
                                     for k, v in row.items()))
    path = pretrained.save("mnist_cfg_distilled", model, meta, command=command, root=args.out)
    say(f"wrote {path}")
    return [path]


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.recipes RECIPE [--seed S] [--out DIR] [--threads N] [--quiet]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes",
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
    try:  # a device this machine lacks is a usage error: one line, before any work
        pick_device(getattr(args, "device", None))
    except ValueError as err:
        parser.error(f"--device: {err} (--device auto picks what there is)")
    torch.set_num_threads(args.threads)
    command = " ".join(["python -m course_lib.recipes", *map(shlex.quote, argv)])
    RECIPES[args.recipe].run(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
