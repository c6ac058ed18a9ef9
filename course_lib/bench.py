"""The benchmark: ``python -m course_lib.bench [--only SECTION ...] [--threads N]``.

Sections: ``samplers``, ``toy``, ``since-2022``, ``mnist`` (the default run); ``mnist-train``, which
trains the MNIST U-Net from scratch by the lessons' quick recipe and grades it; and ``lessons``, which
runs every lesson of ``notebooks/`` (or ``--lessons DIR``) in a fresh kernel against its time budget.

Prints one table of measured speeds and qualities. Timings are medians over
repeats on this machine's CPU with the stated torch thread count; compare
numbers within one run (a shared machine is noisy)."""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from . import data, diffusion, guidance, langevin, pretrained, recipes, sample_metrics, tables, toy, widgets
from .conditional import cfg_grid, grid_noise
from .timing import median_seconds
from .unet import ConditionalUNet


@dataclass
class Row:
    section: str
    quantity: str
    value: float
    unit: str
    note: str = ""


def bench_samplers() -> Iterator[Row]:
    """Sampler throughput on 2-D points with the exact oracle denoiser."""
    mix, schedule = toy.anisotropic(), diffusion.make_schedule("linear", 1000)
    n = 2000
    for label, steps in [("DDPM, 1000 steps", None), ("DDIM, 50 steps", 50), ("DDIM, 20 steps", 20)]:
        seconds = median_seconds(lambda: diffusion.sample(mix.eps_fn(schedule), (n, 2), schedule, steps=steps,
                                                          eta=0.0 if steps else 1.0,
                                                          generator=torch.Generator().manual_seed(0)),
                                 repeats=3 if steps is None else 5)
        n_steps = steps or schedule.T
        yield Row("samplers (exact oracle, 2-D)", f"{label}, {n} points", seconds, "s",
                  f"{n * n_steps / seconds / 1e6:.2f} M point-steps/s")


def latency_rows(section: str, what: str, update: Callable[[float], float], values: list[float]) -> Iterator[Row]:
    """Median and 95th percentile of ``update(value)`` seconds over ``values`` (one move each)."""
    seconds = sorted(update(v) for v in values)
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    yield Row(section, f"{what}: median of {len(values)} moves", 1000 * statistics.median(seconds), "ms")
    yield Row(section, f"{what}: 95th percentile", 1000 * p95, "ms")


def bench_toy() -> Iterator[Row]:
    """The 2-D models: training from scratch, slider latency, learned-versus-exact distances."""
    import matplotlib

    matplotlib.use("Agg")
    section = "toy models (2-D)"
    _, history = recipes.train_toy_cfg(progress=False)
    yield Row(section, "toy_cfg training from scratch", history.seconds, "s", f"{len(history.losses)} steps")
    _, history = recipes.train_toy_classifier(progress=False)
    yield Row(section, "toy_classifier training from scratch", history.seconds, "s",
              f"{len(history.losses)} steps")
    cfg, clf = pretrained.load("toy_cfg"), pretrained.load("toy_classifier")
    mix, schedule = cfg.meta["mixture"], cfg.schedule
    values = [-1.0 + 0.35 * i for i in range(20)]
    explorer = widgets.ScatterExplorer(widgets.cfg_render_2d(cfg.model, mix, schedule, y=2, n=1000),
                                       symbol="w", value_range=(-1.0, 8.0, 0.05), value=0.0, titles={},
                                       precompute=False)
    yield from latency_rows(section, "CFG slider, 1000 learned + 1000 exact points, 10 DDIM steps",
                            explorer.update, values)
    explorer = widgets.ScatterExplorer(
        widgets.classifier_guidance_render_2d(cfg.model, clf.model, mix, schedule, y=2, n=1000),
        symbol="gamma", value_range=(0.0, 10.0, 0.05), value=1.0, titles={}, precompute=False)
    yield from latency_rows(section, "gamma slider, 1000 learned + 1000 exact points, 10 DDIM steps",
                            explorer.update, [v + 1.0 for v in values])
    start = time.perf_counter()
    explorer = widgets.ScatterExplorer(widgets.cfg_render_2d(cfg.model, mix, schedule, y=2, n=1000), symbol="w",
                                       value_range=(-1.0, 8.0, 0.25), value=2.0, titles={})
    explorer.wait()
    yield Row(section, "CFG slider: all 37 values rendered and drawn in the background", time.perf_counter() - start,
              "s", "from construction; after that every move only swaps a PNG")
    for row in sample_metrics.toy_cfg_report(cfg.model, mix, schedule):
        limit = 2 * row["floor"] + 0.05 * float(mix.sample(20_000, generator=torch.Generator().manual_seed(0))[0]
                                                 .std(0).mean())
        yield Row(section, f"SW learned vs exact CFG, class {row['class']}, w={row['w']:g}", row["sw"], "",
                  f"floor {row['floor']:.3f}, target < {limit:.3f} (DDIM 50, eta 1, n {row['n']})")


def bench_since_2022() -> Iterator[Row]:
    """Guidance since 2022 on the exact 2-D oracle: the cost of one eps call of CFG, the guidance
    interval, autoguidance and composition (2000 points, one time step), and of sampling with a
    Langevin corrector against the same DDIM sampler without it."""
    mix, schedule = toy.anisotropic(), diffusion.make_schedule("linear", 1000)
    section, n = "guidance since 2022 (exact oracle, 2-D)", 2000
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((n,), 500, dtype=torch.long)
    cond, uncond, other = mix.eps_fn(schedule, 1), mix.eps_fn(schedule), mix.eps_fn(schedule, 2)
    cfg = guidance.cfg(cond, uncond, 3.0)
    fns = {"conditional eps alone": cond, "CFG, w = 3": cfg,
           "guidance interval around CFG, w = 3": guidance.interval(cfg, cond, 200, 800),
           "autoguidance, w = 3 (broadened bad model)": guidance.autoguidance(
               cond, mix.broadened(0.5).eps_fn(schedule, 1), 3.0),
           "composition of two classes": guidance.compose(uncond, [(cond, 2.0), (other, 2.0)])}
    for what, fn in fns.items():
        yield Row(section, f"one eps call, {n} points: {what}", median_seconds(lambda: fn(x, t), repeats=20), "s")
    for corrector_steps in (0, 1):
        seconds = median_seconds(lambda: langevin.sample_pc(cfg, (n, 2), schedule, steps=50,
                                                            corrector_steps=corrector_steps,
                                                            generator=torch.Generator().manual_seed(0)), repeats=3)
        yield Row(section, f"DDIM 50 steps with CFG, {corrector_steps} Langevin corrector step(s) per level", seconds,
                  "s", f"{n} points")


def bench_mnist(threads: int | None = None) -> Iterator[Row]:
    """Section ``mnist``: training step
    time and size of the U-Net, the shipped training run (from its meta), the 80-digit
    grid, and the slider's response over 20 moves, cold (every move renders) and warm
    (grids precomputed). Needs the shipped ``mnist_cfg`` weights."""
    if threads is not None:
        torch.set_num_threads(threads)
    section = f"mnist ({torch.get_num_threads()} thread(s))"
    p = pretrained.load("mnist_cfg")
    model, schedule, meta = p.model, p.schedule, p.meta
    yield Row(section, "U-Net parameters", sum(q.numel() for q in model.parameters()), "",
              f"{p.path.stat().st_size / 1e6:.2f} MB file")

    trainee = ConditionalUNet(**meta["arch"])
    x0 = torch.rand(128, *data.IMAGE_SHAPE) * 2 - 1
    labels = torch.randint(data.NUM_CLASSES + 1, (128,))
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
        explorer = widgets.DigitGridExplorer(widgets.cfg_render(model, m=4, steps=20, schedule=schedule), values,
                                             0.0, precompute=mode == "warm")
        explorer.wait()

        def move(v: float, explorer=explorer, cold: bool = mode == "cold") -> float:
            if cold:
                explorer.cache.clear()  # every move renders its grid
            return explorer.update(v)

        what = "every move renders" if mode == "cold" else "grids precomputed"
        yield from latency_rows(section, f"slider, 40 digits, DDIM 20 steps ({what})", move, moves)


def bench_mnist_training(recipe: recipes.DigitsRecipe | None = None, threads: int | None = None) -> Iterator[Row]:
    """Section ``mnist-train`` (opt-in, it trains for minutes): train ``mnist_cfg`` now from
    ``recipe`` (default :meth:`~course_lib.recipes.DigitsRecipe.quick`, the lessons' from-scratch
    recipe) and grade it with the shipped judge, 50 digits per class, DDIM 50, beside the
    targets the lessons' budgets rest on."""
    if threads is not None:
        torch.set_num_threads(threads)
    recipe = recipes.DigitsRecipe.quick() if recipe is None else recipe
    section = f"mnist-train ({torch.get_num_threads()} thread(s))"
    x, y = data.load_mnist("train")
    judge = pretrained.load("mnist_judge").model
    model, meta, _ = recipes.train_mnist_cfg(x, y, recipe)
    by_w = sample_metrics.judge_cfg_model(model, judge, recipe.make_schedule(), seed=recipe.seed + 1000)
    yield Row(section, f"train mnist_cfg from scratch: {recipe.steps} steps, batch {recipe.batch_size}",
              meta["seconds"], "s", f"CPU time {meta['cpu_seconds']:.0f} s; target < 600 s")
    for w, acc in by_w.items():
        yield Row(section, f"judged accuracy at w={w} (50 per digit, DDIM 50)", acc, "",
                  "target >= 0.90" if w == "3" else "")


LESSONS_DIR = Path(__file__).resolve().parents[1] / "notebooks"   # the student edition


def lesson_budget(name: str) -> float:
    """The promised wall-clock budget of a lesson in seconds, by its number (docs/conventions.md,
    lessons): 150 s for lessons 00 to 03, 300 s from lesson 04 on."""
    number = int(name[:2])
    return 150.0 if number <= 3 else 300.0


def bench_lessons(folder: Path | str | None = None, timeout: int = 1800) -> Iterator[Row]:
    """Section ``lessons`` (opt-in, it takes as long as the lessons): run each ``NN_*.ipynb`` of
    ``folder`` (default ``notebooks/``, the student edition) top to bottom in a fresh kernel with
    nbclient, as a student's Run All does, and report its wall-clock time against its budget. The
    kernel keeps torch's own thread count (every core), as on a student's laptop."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    folder = Path(folder) if folder is not None else LESSONS_DIR
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no lessons NN_*.ipynb in {folder}; build the student edition first "
                                "(python -m course_lib.coursework build-edition)")
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start, failure = time.perf_counter(), ""
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError) as error:
            failure = f"FAILED ({getattr(error, 'ename', type(error).__name__)})"
        seconds, budget = time.perf_counter() - start, lesson_budget(path.name)
        verdict = failure or ("within budget" if seconds <= budget else "OVER BUDGET")
        yield Row("lessons (fresh kernel, Run All)", path.stem, seconds, "s", f"budget {budget:.0f} s: {verdict}")


SECTIONS: dict[str, Callable[[], Iterator[Row]]] = {"samplers": bench_samplers, "toy": bench_toy,
                                                    "since-2022": bench_since_2022, "mnist": bench_mnist,
                                                    "mnist-train": bench_mnist_training, "lessons": bench_lessons}
DEFAULT_SECTIONS = ["samplers", "toy", "since-2022", "mnist"]  # mnist-train and lessons take minutes: ask with --only


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one row per measurement (:func:`course_lib.tables.format_rows`)."""
    cells = [{**asdict(r), "value": f"{r.value:.4g}"} for r in rows]
    return tables.format_rows(cells, ["section", "quantity", "value", "unit", "note"], align="left", rule=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--lessons", type=Path, default=None, metavar="DIR",
                        help="the lessons the 'lessons' section runs (default notebooks/, the student edition)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"course_lib.bench: torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    rows: list[Row] = []
    sections = {**SECTIONS, "lessons": functools.partial(bench_lessons, args.lessons)}
    for name in args.only or DEFAULT_SECTIONS:
        for row in sections[name]():
            rows.append(row)
            print(f"  measured {row.section}: {row.quantity}", file=sys.stderr, flush=True)
    print(format_table(rows))


if __name__ == "__main__":
    main()
