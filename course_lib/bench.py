"""The benchmark: ``python -m course_lib.bench [--only SECTION ...] [--threads N]``.

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


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
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


SECTIONS: dict[str, Callable[[], Iterator[Row]]] = {"samplers": bench_samplers}


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
    for name in args.only or SECTIONS:
        for row in SECTIONS[name]():
            rows.append(row)
            print(f"  measured {row.section}: {row.quantity}", file=sys.stderr, flush=True)
    print(format_table(rows))


if __name__ == "__main__":
    main()
