"""Frames cached by ``(value, seed)`` and made ahead of time by one background worker.

Why ahead of time: a slider must answer a key press within one frame time, and on a 2-core
laptop one frame takes a tenth of a second (2-D samples) to seconds (a digit grid) to make;
so every slider value is made before it is asked for, the values nearest the slider first.
Nothing here knows about figures: a frame is whatever ``make(value, seed)`` returns.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

F = TypeVar("F")
Key = tuple[float, int]


def key(value: float, seed: int) -> Key:
    """The cache key: ``value`` rounded to 6 decimals (so ``0.1 + 0.2`` finds ``0.3``) and ``seed``."""
    return round(float(value), 6), int(seed)


class FrameCache(Mapping[Key, F], Generic[F]):
    """A read-only mapping ``(value, seed) -> frame`` that makes each frame once, on the
    caller's thread (:meth:`frame`) or ahead of time on one worker thread (:meth:`start`).

    Args:
        make: ``make(value: float, seed: int) -> frame``; the worker calls it on its thread.
        values: the values to make ahead (``list[float]``: non-empty, increasing, finite).
        seed: the seed (``int``) whose frames the worker makes.
        thread_name: the worker thread's name prefix.

    ``near`` is where the slider is: the worker takes the missing value fewest steps from it
    first (right first, where ArrowRight goes). Set ``seed`` and call :meth:`start` again to
    make another seed's frames.
    """

    def __init__(self, make: Callable[[float, int], F], values: Sequence[float], *, seed: int = 0,
                 thread_name: str = "frame-cache") -> None:
        values = [float(v) for v in values]
        if not values or not all(math.isfinite(v) for v in values) or values != sorted(set(values)):
            raise ValueError(f"values must be a non-empty increasing sequence of finite numbers, got {values!r}")
        self.make, self.values, self.thread_name = make, values, thread_name
        self.seed, self.near = seed, values[0]
        self._frames: dict[Key, F] = {}
        self._making: dict[Key, threading.Event] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None
        self._future: Future | None = None

    def __getitem__(self, value_seed: Key) -> F:
        with self._lock:
            return self._frames[key(*value_seed)]

    def __iter__(self) -> Iterator[Key]:
        with self._lock:
            return iter(list(self._frames))

    def __len__(self) -> int:
        return len(self._frames)

    def frame(self, value: float, seed: int, make: Callable[[float, int], F] | None = None) -> F:
        """The frame at ``(value, seed)``: cached, or made now by ``make`` (default: the cache's) and kept.

        Thread-safe: a frame being made on another thread is waited for, never made twice
        (and if that make fails, this call makes it itself, so its error shows here too)."""
        k = key(value, seed)
        with self._lock:
            if k in self._frames:
                return self._frames[k]
            event = self._making.get(k)
            mine = event is None
            if mine:
                event = self._making[k] = threading.Event()
        if not mine:
            event.wait()
            return self.frame(*k, make)
        try:
            made = (self.make if make is None else make)(*k)
            with self._lock:
                return self._frames.setdefault(k, made)
        finally:
            with self._lock:
                del self._making[k]
            event.set()

    def put(self, value: float, seed: int, frame: F) -> None:
        """Keep ``frame`` at ``(value, seed)``, replacing any there."""
        with self._lock:
            self._frames[key(value, seed)] = frame

    def clear(self) -> None:
        """Forget every frame (the next ask makes it again)."""
        with self._lock:
            self._frames.clear()

    def missing(self, seed: int | None = None) -> float | None:
        """The value of ``values`` fewest steps from ``near`` (right first) with no frame for
        ``seed`` (default: ``self.seed``), or None once every value has one."""
        seed = self.seed if seed is None else seed
        here = bisect.bisect_left(self.values, self.near)
        with self._lock:
            todo = [i for i, v in enumerate(self.values) if key(v, seed) not in self._frames]
        return self.values[min(todo, key=lambda i: (abs(i - here), -i))] if todo else None

    @property
    def running(self) -> bool:
        """Whether the worker was started and not stopped (it may have finished every value)."""
        return self._executor is not None

    def start(self) -> Future:
        """Make every value's frame for ``self.seed`` on the worker, one value per job: each job
        makes the missing value nearest ``near`` and queues the next. A later call supersedes it
        (the older chain stops after the frame in progress). At interpreter exit concurrent.futures
        joins its worker and refuses new jobs, so exit waits for the frame in progress only (a
        daemon thread killed inside a torch kernel would abort the process with exit code 134)."""
        with self._lock:
            self._generation += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.thread_name)
            self._future = self._executor.submit(self._next, self._generation, self.seed)
            return self._future

    def _next(self, generation: int, seed: int) -> None:
        value = self.missing(seed)
        if generation != self._generation or value is None:
            return
        self.frame(value, seed)
        with self._lock:
            if generation != self._generation:  # superseded or stopped meanwhile
                return
            try:
                self._future = self._executor.submit(self._next, generation, seed)
            except RuntimeError:  # the interpreter is shutting down
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for the worker, re-raising its error;
        True once every value has a frame for ``self.seed``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.missing() is not None and (future := self._future) is not None:
            try:
                future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if future is self._future:  # no job queued after it: the worker stopped
                break
        return self.missing() is None

    def stop(self) -> None:
        """Stop the worker after the frame in progress; its thread then ends."""
        with self._lock:
            self._generation += 1
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
