"""FrameCache on its own, with a trivial frame function: each frame made once, the worker
fills every value nearest first, a superseded or stopped worker stops, errors surface."""

import threading
import time
from collections import Counter

import pytest

from course_lib.frame_cache import FrameCache

VALUES = [0.0, 0.5, 1.0, 3.0, 9.0]


class Maker:
    """``make(value, seed) -> (value, seed)``, recording its calls; each call waits for ``gate``
    (when given) and then sleeps ``delay`` seconds."""

    def __init__(self, gate: threading.Event | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[float, int]] = []
        self.entered, self.gate, self.delay = threading.Event(), gate, delay
        self._lock = threading.Lock()

    def __call__(self, value: float, seed: int) -> tuple[float, int]:
        with self._lock:
            self.calls.append((value, seed))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.delay)
        return value, seed


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_a_cached_frame_is_not_made_again_and_the_seed_is_part_of_the_key():
    make = Maker()
    cache = FrameCache(make, VALUES)
    assert cache.frame(1.0, 0) == (1.0, 0)
    assert cache.frame(1.0, 0) == (1.0, 0) and cache.frame(0.1 + 0.9, 0) == (1.0, 0)  # rounded key
    assert make.calls == [(1.0, 0)]
    assert cache.frame(1.0, 7) == (1.0, 7)  # another seed is another frame
    assert make.calls == [(1.0, 0), (1.0, 7)]
    assert cache[(1.0, 7)] == (1.0, 7) and (1.0, 0) in cache and (3.0, 0) not in cache
    assert cache.get((3.0, 0)) is None and len(cache) == 2 and set(cache) == {(1.0, 0), (1.0, 7)}


def test_a_callers_own_maker_and_put_and_clear():
    make = Maker()
    cache = FrameCache(make, VALUES)
    assert cache.frame(0.5, 0, make=lambda v, s: "mine") == "mine" and make.calls == []
    cache.put(0.5, 0, "replaced")
    assert cache.frame(0.5, 0) == "replaced"
    cache.clear()
    assert len(cache) == 0 and cache.frame(0.5, 0) == (0.5, 0) and make.calls == [(0.5, 0)]


def test_the_worker_makes_every_value_once_nearest_first_right_before_left():
    make = Maker()
    cache = FrameCache(make, VALUES, seed=3, thread_name="fc-fill")
    cache.near = 1.0
    assert cache.missing() == 1.0
    cache.start()
    assert cache.wait(timeout=10)
    assert make.calls == [(1.0, 3), (3.0, 3), (0.5, 3), (9.0, 3), (0.0, 3)]  # by steps, not by distance
    assert set(cache) == {(v, 3) for v in VALUES} and cache.missing() is None
    assert cache.missing(seed=0) == 1.0  # another seed: nothing made yet
    cache.stop()


def test_a_superseded_worker_stops_after_the_frame_in_progress():
    gate = threading.Event()
    make = Maker(gate)
    cache = FrameCache(make, VALUES, thread_name="fc-stale")
    cache.start()
    assert make.entered.wait(10)  # the seed-0 chain is inside make
    cache.seed = 1
    cache.start()
    gate.set()
    assert cache.wait(timeout=10)
    assert [c for c in make.calls if c[1] == 0] == [(0.0, 0)]  # only the frame that was in progress
    assert sorted(c for c in make.calls if c[1] == 1) == [(v, 1) for v in VALUES]
    cache.stop()


def test_stop_ends_the_worker_thread():
    make = Maker(delay=0.02)
    cache = FrameCache(make, [float(v) for v in range(100)], thread_name="fc-stop")
    cache.start()
    assert make.entered.wait(10) and cache.running
    cache.stop()
    assert not cache.running
    start = time.monotonic()
    assert not cache.wait(timeout=10) and time.monotonic() - start < 2  # returns once stopped
    for thread in _threads("fc-stop"):
        thread.join(timeout=5)
    assert not _threads("fc-stop")
    made = len(make.calls)
    time.sleep(0.1)
    assert len(make.calls) == made < 100


def test_wait_gives_up_after_its_timeout():
    gate = threading.Event()
    cache = FrameCache(Maker(gate), VALUES, thread_name="fc-timeout")
    assert not cache.wait(timeout=0.1)  # never started: nothing to wait for
    cache.start()
    start = time.monotonic()
    assert not cache.wait(timeout=0.3)
    assert 0.25 < time.monotonic() - start < 3
    gate.set()
    assert cache.wait(timeout=10)
    cache.stop()


def test_a_frame_in_progress_on_the_worker_is_waited_for_not_made_twice():
    gate = threading.Event()
    make = Maker(gate)
    cache = FrameCache(make, VALUES, thread_name="fc-share")
    cache.start()
    assert make.entered.wait(10)  # the worker is making (0.0, 0)
    got = []
    asker = threading.Thread(target=lambda: got.append(cache.frame(0.0, 0, make=lambda v, s: "spot")))
    asker.start()
    asker.join(timeout=0.2)
    assert asker.is_alive()  # waiting for the worker's frame
    gate.set()
    asker.join(timeout=10)
    assert got == [(0.0, 0)]  # the worker's frame, not "spot"
    assert cache.wait(timeout=10)
    cache.stop()


def test_many_threads_and_the_worker_make_each_frame_exactly_once():
    make = Maker(delay=0.005)
    values = [float(v) for v in range(30)]
    cache = FrameCache(make, values, thread_name="fc-many")
    cache.start()
    results: list[list[tuple[float, int]]] = [[] for _ in range(4)]
    askers = [threading.Thread(target=lambda mine=mine: mine.extend(cache.frame(v, 0) for v in values))
              for mine in results]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(timeout=30)
    assert cache.wait(timeout=30)
    assert Counter(make.calls) == Counter({(v, 0): 1 for v in values})
    assert all(mine == [(v, 0) for v in values] for mine in results)
    cache.stop()


def test_a_failing_make_surfaces_in_wait_and_on_the_callers_thread():
    def make(value, seed):
        if value == 3.0:
            raise RuntimeError("make failed at 3")
        return value

    cache = FrameCache(make, VALUES, thread_name="fc-error")
    cache.start()
    with pytest.raises(RuntimeError, match="make failed at 3"):
        cache.wait(timeout=10)
    with pytest.raises(RuntimeError, match="make failed at 3"):
        cache.frame(3.0, 0)
    assert cache.frame(9.0, 0) == 9.0
    cache.stop()


@pytest.mark.parametrize("values", [[], [1.0, 0.0], [0.0, 0.0], [0.0, float("nan")], [0.0, float("inf")]])
def test_values_must_be_increasing_and_finite(values):
    with pytest.raises(ValueError, match="values must be a non-empty increasing sequence of finite numbers"):
        FrameCache(Maker(), values)
