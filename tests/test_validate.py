"""The argument checks: each names the argument and the allowed range, and refuses bools."""

import math

import pytest
import torch

from course_lib import validate


@pytest.mark.parametrize("value", [2.0, True, "3", None, 0, 11])
def test_integer_refuses_non_integers_bools_and_values_out_of_range(value):
    with pytest.raises(ValueError, match=r"^steps must be an integer in 1\.\.10 \(T\), got "):
        validate.integer(value, "steps", minimum=1, maximum=10, hint=" (T)")


def test_integer_accepts_the_bounds_themselves():
    assert validate.integer(1, "n", minimum=1, maximum=3) == 1
    assert validate.integer(3, "n", minimum=1, maximum=3) == 3
    assert validate.integer(-5, "n") == -5
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0, got -1$"):
        validate.integer(-1, "n", minimum=0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, False, "1", torch.ones(2)])
def test_number_refuses_nan_inf_bools_strings_and_long_tensors(value):
    with pytest.raises(ValueError, match=r"^w must be a finite number >= -1, got "):
        validate.number(value, "w", minimum=-1)


def test_number_bounds_inclusive_and_exclusive():
    assert validate.number(-1, "w", minimum=-1) == -1.0
    assert validate.number(torch.tensor(2.5), "w", minimum=-1) == 2.5
    assert validate.number(0.5, "p", minimum=0, maximum=1) == 0.5
    with pytest.raises(ValueError, match=r"^p must be a finite number in 0\.\.1, got 1\.5$"):
        validate.number(1.5, "p", minimum=0, maximum=1)
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got 0$"):
        validate.number(0, "lr", above=0)
    with pytest.raises(ValueError, match=r"^s must be a finite number > 0 and <= 1, got 1\.5$"):
        validate.number(1.5, "s", above=0, maximum=1)
    with pytest.raises(ValueError, match="minimum or above"):
        validate.number(1, "x", minimum=0, above=0)


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_flag_accepts_only_true_or_false(value):
    with pytest.raises(ValueError, match=r"^progress must be True or False, got "):
        validate.flag(value, "progress")
    assert validate.flag(True, "progress") is True and validate.flag(False, "progress") is False


def test_bounds_in_words_for_a_maximum_alone_and_for_no_bound():
    # _bounds' last line: " <= max" when only a maximum is given, nothing when no bound is
    with pytest.raises(ValueError, match=r"^x must be a finite number <= 1, got 2$"):
        validate.number(2, "x", maximum=1)
    with pytest.raises(ValueError, match=r"^x must be a finite number, got 'a'$"):
        validate.number("a", "x")
    with pytest.raises(ValueError, match=r"^n must be an integer, got 2\.5$"):
        validate.integer(2.5, "n")
