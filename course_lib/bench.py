"""The benchmark: ``python -m course_lib.bench [--only SECTION ...] [--threads N]``.

Sections: ``samplers``, ``toy``, ``mnist`` (the default run) and ``mnist-train``, which
trains the MNIST U-Net from scratch (about 7 minutes on 2 idle threads) and grades it.

Prints one table of measured speeds and qualities. Timings are medians over
repeats on this machine's CPU with the stated torch thread count; compare
numbers within one run (a shared machine is noisy)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from . import diffusion, toy


@dataclass
class Row:
    section: str
    quantity: str
    value: float
    unit: str
    note: str = ""


def median_seconds(fn: Callable[[], object], repeats: int = 5, *, warmup: int = 1,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones.

    ``clock`` is wall-clock time by default; ``time.process_time`` counts only the CPU
    time of this process, so other programs on a busy machine do not inflate it."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


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
    from . import pretrained, train, widgets

    section = "toy models (2-D)"
    _, history = train.train_toy_cfg(progress=False)
    yield Row(section, "toy_cfg training from scratch", history.seconds, "s", f"{len(history.losses)} steps")
    _, history = train.train_toy_classifier(progress=False)
    yield Row(section, "toy_classifier training from scratch", history.seconds, "s",
              f"{len(history.losses)} steps")
    cfg, clf = pretrained.load("toy_cfg"), pretrained.load("toy_classifier")
    mix, schedule = cfg.meta["mixture"], cfg.schedule
    values = [-1.0 + 0.35 * i for i in range(20)]
    explorer = widgets.ScatterExplorer(widgets.cfg_render_2d(cfg.model, mix, schedule, y=2, n=1000),
                                       symbol="w", value_range=(-1.0, 8.0, 0.05), value=0.0, titles={})
    yield from latency_rows(section, "CFG slider, 1000 learned + 1000 exact points, 10 DDIM steps",
                            explorer.update, values)
    explorer = widgets.ScatterExplorer(
        widgets.classifier_guidance_render_2d(cfg.model, clf.model, mix, schedule, y=2, n=1000),
        symbol="gamma", value_range=(0.0, 10.0, 0.05), value=1.0, titles={})
    yield from latency_rows(section, "gamma slider, 1000 learned + 1000 exact points, 10 DDIM steps",
                            explorer.update, [v + 1.0 for v in values])
    for row in train.toy_cfg_report(cfg.model, mix, schedule):
        limit = 2 * row["floor"] + 0.05 * float(mix.sample(20_000, generator=torch.Generator().manual_seed(0))[0]
                                                 .std(0).mean())
        yield Row(section, f"SW learned vs exact CFG, class {row['class']}, w={row['w']:g}", row["sw"], "",
                  f"floor {row['floor']:.3f}, target < {limit:.3f} (DDIM 50, eta 1, n {row['n']})")


def bench_mnist() -> Iterator[Row]:
    """The MNIST track: step time, training to judged accuracy, grid sampling, slider response."""
    from . import digits

    yield from digits.bench_rows(threads=torch.get_num_threads())


def bench_mnist_training() -> Iterator[Row]:
    """Opt-in: train the MNIST U-Net from scratch now (about 7 minutes) and grade it."""
    from . import digits

    yield from digits.from_scratch_rows(threads=torch.get_num_threads())


SECTIONS: dict[str, Callable[[], Iterator[Row]]] = {"samplers": bench_samplers, "toy": bench_toy,
                                                    "mnist": bench_mnist, "mnist-train": bench_mnist_training}
DEFAULT_SECTIONS = ["samplers", "toy", "mnist"]  # mnist-train trains for minutes: ask for it with --only


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one row per measurement."""
    header = ("section", "quantity", "value", "unit", "note")
    cells = [header] + [(r.section, r.quantity, f"{r.value:.4g}", r.unit, r.note) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"course_lib.bench: torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    rows: list[Row] = []
    for name in args.only or DEFAULT_SECTIONS:
        for row in SECTIONS[name]():
            rows.append(row)
            print(f"  measured {row.section}: {row.quantity}", file=sys.stderr, flush=True)
    print(format_table(rows))


if __name__ == "__main__":
    main()
