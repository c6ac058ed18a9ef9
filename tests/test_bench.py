"""The benchmark's table and timer (its numbers are measured by running it, not here)."""

import pytest

from course_lib import bench


def test_format_table_aligns_rows():
    rows = [bench.Row("a", "speed", 1.23456, "s", "note"), bench.Row("bb", "q", 10.0, "ms")]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].split() == ["section", "quantity", "value", "unit", "note"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:4] == ["a", "speed", "1.235", "s"] and lines[3].split() == ["bb", "q", "10", "ms"]


def test_median_seconds_counts_calls():
    calls = []
    seconds = bench.median_seconds(lambda: calls.append(1), repeats=4)
    assert len(calls) == 5 and seconds >= 0
    calls = []
    assert bench.median_seconds(lambda: calls.append(1), repeats=5, warmup=2) >= 0 and len(calls) == 7
    with pytest.raises(ValueError, match="repeats"):
        bench.median_seconds(lambda: None, repeats=0)
    ticks = iter(range(100))
    assert bench.median_seconds(lambda: None, repeats=3, warmup=0, clock=lambda: float(next(ticks))) == 1.0


def test_main_prints_a_table(capsys, monkeypatch):
    monkeypatch.setitem(bench.SECTIONS, "samplers", lambda: iter([bench.Row("samplers", "x", 1.0, "s")]))
    bench.main(["--only", "samplers"])
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "samplers" in out.splitlines()[-1]


def test_training_section_is_opt_in():
    assert "mnist-train" in bench.SECTIONS and "mnist-train" not in bench.DEFAULT_SECTIONS
    assert set(bench.DEFAULT_SECTIONS) == set(bench.SECTIONS) - {"mnist-train"}
