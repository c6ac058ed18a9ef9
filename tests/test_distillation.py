"""course_lib.distillation: the student that takes w as an input, and the shipped mnist_cfg_distilled."""

import pytest
import torch

from course_lib import diffusion, distillation, guidance, pretrained, recipes
from course_lib.unet import ConditionalUNet


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return ConditionalUNet(num_classes=10, T=50, base_channels=8, emb_dim=16).eval()


def _inputs(B=4, T=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 1, 28, 28, generator=g), torch.randint(T, (B,), generator=g),
            torch.randint(10, (B,), generator=g))


def test_student_starts_as_the_teachers_conditional_prediction(teacher):
    student = distillation.from_teacher(teacher).eval()
    x, t, y = _inputs()
    with torch.no_grad():
        for w in (0.0, 1.5, 4.0):
            torch.testing.assert_close(student(x, t, y, w), teacher(x, t, y))
        torch.testing.assert_close(student(x, t, y, torch.tensor([0.0, 1.0, 2.0, 3.0])), teacher(x, t, y))


def test_distilling_reduces_the_loss_and_makes_w_matter(teacher):
    schedule = diffusion.make_schedule("linear", 50)
    g = torch.Generator().manual_seed(1)
    x0, y = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1, torch.randint(10, (64,), generator=g)
    student = distillation.from_teacher(teacher)
    history = distillation.distill(student, teacher, x0, y, schedule, steps=40, batch_size=16, lr=3e-3,
                                   ema_decay=None, progress=False)
    assert sum(history.losses[-10:]) < sum(history.losses[:10])
    x, t, labels = _inputs()
    with torch.no_grad():
        assert not torch.allclose(student(x, t, labels, 0.0), student(x, t, labels, 3.0))


def test_call_counter_counts_half_the_calls_of_cfg(teacher):
    schedule = diffusion.make_schedule("linear", 50)
    student = distillation.from_teacher(teacher).eval()
    labels = torch.arange(10)
    x_T = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    counts = {}
    for name, model, fn in (("teacher", teacher, guidance.model_cfg_eps_fn(teacher, labels, 2.0, 10)),
                            ("student", student, distillation.distilled_eps_fn(student, labels, 2.0))):
        counter = distillation.CallCounter(model)
        diffusion.sample(fn, (10, 1, 28, 28), schedule, steps=5, eta=0.0, x_T=x_T)
        counter.close()
        counts[name] = counter.rows / 10
    assert counts == {"teacher": 10.0, "student": 5.0}


def test_bad_input_is_refused(teacher):
    student = distillation.from_teacher(teacher)
    x, t, y = _inputs()
    with pytest.raises(ValueError, match="w must be"):
        student(x, t, y, torch.zeros(3))
    with pytest.raises(ValueError, match="w must be a finite number, got nan"):
        student(x, t, y, float("nan"))
    with pytest.raises(ValueError, match="w must be a finite number in 0..4 "):
        distillation.distilled_eps_fn(student, 1, 5.0)
    with pytest.raises(ValueError, match="w_max"):
        distillation.GuidanceUNet(w_max=0.0)
    with pytest.raises(ValueError, match="teacher"):
        distillation.from_teacher(student)
    schedule = diffusion.make_schedule("linear", 50)
    with pytest.raises(ValueError, match="w_min and w_max"):
        distillation.distill(student, teacher, x, y, schedule, w_min=3.0, w_max=2.0, progress=False)


@pytest.mark.skipif("mnist_cfg_distilled" not in pretrained.available(), reason="weights not shipped yet")
def test_shipped_distilled_model_loads_and_matches_the_teacher_within_the_judges_noise():
    p = pretrained.load("mnist_cfg_distilled")
    assert isinstance(p.model, distillation.GuidanceUNet)
    assert p.meta["command"].startswith("python -m course_lib.recipes mnist-distilled")
    blob = torch.load(p.path, weights_only=True)                       # plain data only
    assert set(blob) == {"state_dict", "meta"}
    report = p.meta["versus_teacher"]["by_w"]
    for w in ("1", "3"):
        teacher, student = report[w]["teacher"], report[w]["student"]
        se = (teacher["se"] ** 2 + student["se"] ** 2) ** 0.5
        assert abs(teacher["accuracy"] - student["accuracy"]) <= 2 * se + 1e-9, (w, teacher, student)
        assert student["calls_per_sample"] * 2 == teacher["calls_per_sample"]


def test_recipe_is_registered():
    assert "mnist_cfg_distilled" in pretrained.REGISTRY
    assert recipes.COMMANDS["mnist-distilled"] == "python -m course_lib.recipes mnist-distilled"
    quick = distillation.DistillRecipe.quick()
    assert quick.steps < distillation.DistillRecipe().steps


def test_train_command_writes_the_distilled_model(monkeypatch, tmp_path, capsys):
    from course_lib import data
    from course_lib.recipes import __main__ as command_line

    x, y = data.load_mnist("train")
    monkeypatch.setattr(data, "load_mnist", lambda split="train": (x[:40], y[:40]))
    monkeypatch.setattr(distillation, "DistillRecipe", _tiny)
    monkeypatch.setattr(distillation, "compare_with_teacher",
                        lambda *a, **k: {"by_w": {"1": {"teacher": {"accuracy": 0.9, "se": 0.01, "diversity": 1.0,
                                                                    "calls_per_sample": 2.0},
                                                        "student": {"accuracy": 0.9, "se": 0.01, "diversity": 1.0,
                                                                    "calls_per_sample": 1.0}}}})
    assert command_line.main(["mnist-distilled", "--out", str(tmp_path)]) == 0
    assert "mnist_cfg_distilled" in capsys.readouterr().out
    p = pretrained.load("mnist_cfg_distilled", root=tmp_path)
    assert isinstance(p.model, distillation.GuidanceUNet) and p.meta["steps"] == 2
    assert p.meta["command"] == f"python -m course_lib.recipes mnist-distilled --out {tmp_path}"


_REAL_RECIPE = distillation.DistillRecipe


def _tiny(seed=0):
    return _REAL_RECIPE(seed=seed, steps=2, batch_size=4)


def test_load_or_train_distils_the_shipped_teacher_from_scratch(monkeypatch):
    from course_lib import data

    x, y = data.load_mnist("train")
    monkeypatch.setattr(data, "load_mnist", lambda split="train": (x[:40], y[:40]))
    monkeypatch.setattr(distillation.DistillRecipe, "quick", classmethod(lambda cls, seed=0: _tiny(seed)))
    p = recipes.load_or_train("mnist_cfg_distilled", from_scratch=True, progress=False, threads=1)
    assert isinstance(p.model, distillation.GuidanceUNet) and p.path is None and p.num_classes == 10
    assert p.meta["teacher"] == "mnist_cfg" and len(p.history.losses) == 2
