"""The one timer."""

import pytest

from course_lib import timing


def test_median_seconds_counts_calls():
    calls = []
    seconds = timing.median_seconds(lambda: calls.append(1), repeats=4)
    assert len(calls) == 5 and seconds >= 0
    calls = []
    assert timing.median_seconds(lambda: calls.append(1), repeats=5, warmup=2) >= 0 and len(calls) == 7
    with pytest.raises(ValueError, match="repeats"):
        timing.median_seconds(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        timing.median_seconds(lambda: None, warmup=-1)
    ticks = iter(range(100))
    assert timing.median_seconds(lambda: None, repeats=3, warmup=0, clock=lambda: float(next(ticks))) == 1.0
