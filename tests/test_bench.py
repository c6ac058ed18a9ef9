"""The benchmark's table and sections (its numbers are measured by running it, not here)."""

from course_lib import bench, data, evaluate, recipes


def test_format_table_aligns_rows():
    rows = [bench.Row("a", "speed", 1.23456, "s", "note"), bench.Row("bb", "q", 10.0, "ms")]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].split() == ["section", "quantity", "value", "unit", "note"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:4] == ["a", "speed", "1.235", "s"] and lines[3].split() == ["bb", "q", "10", "ms"]


def test_main_prints_a_table(capsys, monkeypatch):
    monkeypatch.setitem(bench.SECTIONS, "samplers", lambda: iter([bench.Row("samplers", "x", 1.0, "s")]))
    bench.main(["--only", "samplers"])
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "samplers" in out.splitlines()[-1]


def test_training_section_is_opt_in():
    assert "mnist-train" in bench.SECTIONS and "mnist-train" not in bench.DEFAULT_SECTIONS
    assert set(bench.DEFAULT_SECTIONS) == set(bench.SECTIONS) - {"mnist-train"}


def test_from_scratch_rows_train_and_grade(monkeypatch):
    recipe = recipes.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1)
    small = data.load_mnist("train")[0][:40], data.load_mnist("train")[1][:40]
    monkeypatch.setattr(data, "load_mnist", lambda split="train": small)
    monkeypatch.setattr(evaluate, "judge_cfg_model", lambda model, judge, schedule, seed: {"0": 0.25, "3": 0.5})
    rows = list(bench.bench_mnist_training(recipe, threads=1))
    assert rows[0].section == "mnist-train (1 thread(s))" and "2 steps" in rows[0].quantity and rows[0].value >= 0
    assert [(r.quantity.split(" (")[0], r.value, r.note) for r in rows[1:]] == [
        ("judged accuracy at w=0", 0.25, ""), ("judged accuracy at w=3", 0.5, "target >= 0.90")]
