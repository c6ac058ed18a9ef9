"""One timer for lessons and the benchmark: the median of repeated calls."""

from __future__ import annotations

import statistics
import time
from typing import Callable

from . import validate


def median_seconds(fn: Callable[[], object], repeats: int = 5, *, warmup: int = 1,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones.

    ``clock`` is wall-clock time by default; ``time.process_time`` counts only the CPU
    time of this process, so other programs on a busy machine do not inflate it."""
    validate.integer(repeats, "repeats", minimum=1)
    validate.integer(warmup, "warmup", minimum=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)
