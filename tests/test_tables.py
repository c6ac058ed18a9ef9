"""The one table formatter and row filter."""

import pytest

from course_lib import tables


def test_format_rows_numbers_nan_and_alignment():
    table = tables.format_rows([{"w": float("nan"), "accuracy": 0.5}, {"w": 1.0, "accuracy": 0.25}])
    assert table.splitlines()[1].split() == ["-", "0.500"] and table.splitlines()[2].split() == ["1.000", "0.250"]
    lines = tables.format_rows([{"a": "x", "b": 1}, {"a": "yyy", "b": 22}], align="left", rule=True).splitlines()
    assert lines == ["a    b", "---  --", "x    1", "yyy  22"]
    assert tables.format_rows([{"a": 1.23456}], number_format=".4g").splitlines()[1] == "1.235"
    assert tables.format_rows([{"a": 1, "b": 2}], ["b"]).splitlines() == ["b", "2"]


def test_format_rows_rejects_bad_input():
    with pytest.raises(ValueError, match="rows must"):
        tables.format_rows([])
    with pytest.raises(ValueError, match="align"):
        tables.format_rows([{"a": 1}], align="centre")
    with pytest.raises(ValueError, match="columns must"):
        tables.format_rows([{"a": 1}], ["b"])


def test_rows_where_matches_every_key():
    rows = [{"g": "cfg", "m": "exact"}, {"g": "cfg", "m": "learned"}, {"g": "classifier", "m": "exact"}]
    assert tables.rows_where(rows, g="cfg") == rows[:2]
    assert tables.rows_where(rows, g="cfg", m="exact") == rows[:1]
    assert tables.rows_where(rows, g="none") == []
