"""Grading throughput with the sandbox on and off, in one run on this machine.

``python tools/grading_throughput.py [--n 6] [--lesson 03_classifier_free_guidance] [--jobs 1 2]``
makes N submissions of the lesson's source (its worked solutions: full marks), grades them with
``grade_submission`` N at a time for every ``--jobs`` value, sandboxed (bubblewrap) and not, in
alternating order, and prints for each run: seconds, submissions per minute, the mean
seconds per submission, the CPU seconds of the grader's children, and the load average sampled
every 5 s. The sandbox's cost per submission is the difference of the mean seconds at ``--jobs 1``.
``--startup K`` instead times, K times each, sandboxed and not: an empty Python under the supervisor,
and one harness grading a one-line exercise (its start-up: torch, course_lib, the guard).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's course_lib
from course_lib.coursework import grading, material, sandbox  # noqa: E402


def _load_sampler(stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(5.0):
        samples.append(os.getloadavg()[0])


def grade_batch(paths: list[Path], graded, *, jobs: int, sandboxed: bool, limits: grading.Limits) -> dict:
    """Grade ``paths`` ``jobs`` at once; returns timings, scores and the load average."""
    samples, stop = [os.getloadavg()[0]], threading.Event()
    sampler = threading.Thread(target=_load_sampler, args=(stop, samples), daemon=True)
    sampler.start()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        rows = list(pool.map(lambda p: grading.grade_submission(p, p.parent.name, graded=graded, limits=limits,
                                                                sandboxed=sandboxed), paths))
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop.set()
    return {"seconds": seconds, "per_minute": 60 * len(paths) / seconds,
            "mean_submission_s": sum(r.seconds for r in rows) / len(rows),
            "children_cpu_s": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
            "scores": sorted({(r.score, r.max_score, r.status) for r in rows}),
            "load": sum(samples) / len(samples)}


def startup(repeats: int) -> None:
    """Seconds per process start, sandboxed and not (module docstring)."""
    from course_lib.exercises import Exercise
    from instructor.exercises.core import Graded, Grading

    cases = lambda gen: [(torch.ones(3),)]  # noqa: E731
    graded = Graded(Exercise(name="double", lesson="99_t", points=1, public_cases=cases),
                    Grading("double", lambda x: 2 * x, cases, understanding="timing", shortcut="timing"))
    limits = grading.Limits(cell_timeout=60)
    for sandboxed in (True, False, True, False):
        folder = Path(tempfile.mkdtemp(prefix="startup-"))
        jail = sandbox.Jail(folder) if sandboxed else None
        times = []
        for _ in range(repeats):
            start = time.monotonic()
            sandbox.run([sys.executable, "-I", "-c", "pass"], cwd=folder, env=sandbox.minimal_env(folder, None),
                        timeout=60, cpu_seconds=60, memory_bytes=4 << 30, log=folder / "log", jail=jail)
            times.append(time.monotonic() - start)
        shutil.rmtree(folder, ignore_errors=True)
        harness = []
        for _ in range(repeats):
            start = time.monotonic()
            row = grading._grade_functions([graded], {"double": "def double(x):\n    return 2 * x"}, limits,
                                           sandboxed=sandboxed)["double"]
            harness.append(time.monotonic() - start)
            assert row.points == 1, row.message
        print(f"sandbox {'on ' if sandboxed else 'off'}: empty python {sum(times) / repeats:.2f} s, "
              f"one harness {sum(harness) / repeats:.2f} s (mean of {repeats}), load {os.getloadavg()[0]:.1f}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6, help="submissions per run (default 6)")
    parser.add_argument("--lesson", default="03_classifier_free_guidance")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per cell and per graded function")
    parser.add_argument("--startup", type=int, metavar="K", help="time process start-ups K times instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if sandbox.unavailable():
        parser.error(sandbox.unavailable())
    graded = material.load().GRADED
    if args.startup:
        startup(args.startup)
        return 0
    grading.warm_up({k: g for k, g in graded.items() if g.lesson == args.lesson})
    source = material.lessons_folder() / f"{args.lesson}.ipynb"
    folder = Path(tempfile.mkdtemp(prefix="throughput-"))
    try:
        paths = []
        for i in range(args.n):
            (folder / f"student{i:02d}").mkdir()
            paths.append(folder / f"student{i:02d}" / source.name)
            shutil.copyfile(source, paths[-1])
        limits = grading.Limits(args.timeout, 10 * args.timeout)
        print(f"{args.n} submissions of {source.name}, {os.cpu_count()} cores, torch threads 1 in the grader")
        for jobs in args.jobs:
            for sandboxed in (True, False):
                r = grade_batch(paths, graded, jobs=jobs, sandboxed=sandboxed, limits=limits)
                print(f"--jobs {jobs} sandbox {'on ' if sandboxed else 'off'}: {r['seconds']:.0f} s, "
                      f"{r['per_minute']:.2f} per minute, {r['mean_submission_s']:.1f} s per submission, "
                      f"children CPU {r['children_cpu_s']:.0f} s, mean load {r['load']:.1f}, scores {r['scores']}",
                      flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
