"""The benchmark's table and sections (its numbers are measured by running it, not here)."""

import torch

from course_lib import bench, data, recipes, sample_metrics


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


def test_training_and_lessons_sections_are_opt_in():
    assert "mnist-train" in bench.SECTIONS and "mnist-train" not in bench.DEFAULT_SECTIONS
    assert set(bench.DEFAULT_SECTIONS) == set(bench.SECTIONS) - {"mnist-train", "lessons"}


def test_from_scratch_rows_grade_the_model_just_trained(monkeypatch):
    """The section trains by the recipe and hands the judge what it trained, on the recipe's schedule
    and with the recipe's seed + 1000; the stand-in judge's answers are computed from what it was
    handed, so a row built from anything else fails."""
    from course_lib.unet import ConditionalUNet

    recipe = recipes.DigitsRecipe(steps=2, batch_size=4, base_channels=8, emb_dim=8, warmup_steps=1)
    small = data.load_mnist("train")[0][:40], data.load_mnist("train")[1][:40]
    monkeypatch.setattr(data, "load_mnist", lambda split="train": small)
    trained = []
    real_train = recipes.train_mnist_cfg
    monkeypatch.setattr(recipes, "train_mnist_cfg", lambda *a, **k: trained.append(real_train(*a, **k)) or trained[-1])

    def judge(model, judge, schedule, seed):
        assert isinstance(model, ConditionalUNet) and isinstance(judge, torch.nn.Module)
        return {"0": schedule.T / 10_000, "3": (seed + sum(p.sum() for p in model.parameters()).item()) / 10_000}

    monkeypatch.setattr(sample_metrics, "judge_cfg_model", judge)
    rows = list(bench.bench_mnist_training(recipe, threads=1))
    model, meta, _ = trained[0]
    assert rows[0].section == "mnist-train (1 thread(s))" and "2 steps" in rows[0].quantity
    assert rows[0].value == meta["seconds"] >= 0               # the recipe rounds its seconds
    weights = sum(p.sum() for p in model.parameters()).item()
    assert [(r.quantity.split(" (")[0], r.value, r.note) for r in rows[1:]] == [
        ("judged accuracy at w=0", recipe.make_schedule().T / 10_000, ""),
        ("judged accuracy at w=3", (recipe.seed + 1000 + weights) / 10_000, "target >= 0.90")]


def test_lesson_budgets():
    assert [bench.lesson_budget(f"{i:02d}_x.ipynb") for i in range(7)] == [150] * 4 + [300] * 3
    assert "lessons" in bench.SECTIONS and "lessons" not in bench.DEFAULT_SECTIONS


def _notebook(path, source):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_lessons_section_runs_each_lesson_fresh_against_its_budget(tmp_path):
    _notebook(tmp_path / "00_quick.ipynb", "import time\ntime.sleep(1.0)\nx = 1")
    _notebook(tmp_path / "04_needs_x.ipynb", "print(x)")   # a fresh kernel: x from lesson 00 is not there
    _notebook(tmp_path / "notes.ipynb", "raise SystemExit")  # not a lesson: not run
    rows = list(bench.bench_lessons(tmp_path, timeout=60))
    assert [r.quantity for r in rows] == ["00_quick", "04_needs_x"]
    assert rows[0].value >= 1.0 and rows[0].note == "budget 150 s: within budget"
    assert rows[1].note == "budget 300 s: FAILED (NameError)"


def test_main_hands_the_lessons_folder_to_the_section(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_lessons", lambda folder: iter([bench.Row("lessons", str(folder), 1.0, "s")]))
    bench.main(["--only", "lessons", "--lessons", str(tmp_path)])
    assert str(tmp_path) in capsys.readouterr().out.splitlines()[-1]
