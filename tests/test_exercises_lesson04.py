"""Lesson 04's exercises: each graded one accepts a right answer and rejects its typical mistakes;
hidden cases hold inputs the instant check never shows; the end-of-lesson functions find what the
lesson says the student should find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import course_lib
from course_lib import checks, exercises, toy
from course_lib.exercises import tradeoff as ex04

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_quality_diversity_tradeoff.ipynb"


def _sqrtm(m):
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def knn_precision(real, fake, k=5):
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    return (torch.cdist(fake, real) <= radii).any(dim=1).double().mean().item()


def frechet_to_class(x, mean, cov):  # from scratch, no course_lib
    x, cov = x.double(), cov.double()
    s, root = torch.cov(x.T), _sqrtm(cov)
    return float(((x.mean(0) - mean) ** 2).sum() + torch.trace(s + cov - 2 * _sqrtm(root @ s @ root)))


def leak_repair_weight(lam):
    return lam / (1 - lam)


def _biased_covariance(x, mean, cov):
    x, cov = x.double(), cov.double()
    s, root = torch.cov(x.T, correction=0), _sqrtm(cov)
    return float(((x.mean(0) - mean) ** 2).sum() + torch.trace(s + cov - 2 * _sqrtm(root @ s @ root)))


RIGHT = dict(knn_precision=knn_precision, frechet_to_class=frechet_to_class, leak_repair_weight=leak_repair_weight)
WRONG = dict(  # the typical mistakes, each caught by the instant check and by the hidden cases
    knn_precision=[lambda real, fake, k=5: knn_precision(real, fake, k - 1) if k > 1 else 1.0],  # counts itself
    frechet_to_class=[
        lambda x, mean, cov: float(((x.double().mean(0) - mean) ** 2).sum() + torch.trace(     # product of roots
            torch.cov(x.double().T) + cov - 2 * _sqrtm(torch.cov(x.double().T)) @ _sqrtm(cov.double()))),
        _biased_covariance],
    leak_repair_weight=[lambda lam: lam, lambda lam: 1 / (1 - lam), lambda lam: -lam],
)


def _all_cases(exercise, seed):
    gen = torch.Generator().manual_seed(seed)
    return exercise.public_cases(gen) + exercise.hidden_cases(gen)


def test_the_lesson_has_three_graded_exercises():
    assert sorted(e.name for e in exercises.for_lesson(ex04.LESSON)) == sorted(RIGHT)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_public_and_hidden(name, capsys):
    exercise = exercises.get(name)
    checks.check(name, RIGHT[name])  # raises AssertionError when too far
    for seed in (0, 7):
        assert max(exercise.errors(RIGHT[name], _all_cases(exercise, seed))) <= exercise.tolerance


@pytest.mark.parametrize("name", sorted(WRONG))
def test_typical_mistakes_fail_public_and_hidden(name):
    exercise = exercises.get(name)
    for wrong in WRONG[name]:
        with pytest.raises(AssertionError, match="Hint|must"):
            checks.check(name, wrong)
        gen = torch.Generator().manual_seed(3)
        exercise.public_cases(gen)
        assert max(exercise.errors(wrong, exercise.hidden_cases(gen))) > 10 * exercise.tolerance


def test_hidden_cases_show_what_public_ones_do_not():
    gen = torch.Generator().manual_seed(0)
    knn = exercises.get("knn_precision")
    public, hidden = knn.public_cases(gen), knn.hidden_cases(gen)
    assert 1 in {a[2] for a in hidden} and 1 not in {a[2] for a in public}                    # k = 1
    assert {a[1].shape[1] for a in hidden} - {a[1].shape[1] for a in public}                # another dimension
    fr = exercises.get("frechet_to_class")
    public, hidden = fr.public_cases(gen), fr.hidden_cases(gen)
    assert min(len(a[0]) for a in hidden) < min(len(a[0]) for a in public)                  # a handful of samples
    public_means = {tuple(a[1].tolist()) for a in public}
    assert {tuple(a[1].tolist()) for a in hidden} - public_means                             # other classes
    leak = exercises.get("leak_repair_weight")
    public, hidden = leak.public_cases(gen), leak.hidden_cases(gen)
    assert 0.0 in {a[3] for a in hidden} and 0.0 not in {a[3] for a in public}               # no leak
    hidden_t = torch.cat([a[5] for a in hidden])
    assert {0, 999} <= set(hidden_t.tolist()) and min(len(a[4]) for a in hidden) == 1       # t edges, batch of one
    assert {a[0].num_classes for a in hidden} - {a[0].num_classes for a in public}          # another mixture


def test_leaky_mixture_leaks_the_share_it_is_given():
    mixture = toy.anisotropic()
    leaky = ex04.leaky_mixture(mixture, 1, 0.3)
    x, _ = leaky.sample(20_000, generator=torch.Generator().manual_seed(0))
    from_class_1 = (mixture.posterior(x.double()).argmax(1) == 1).double().mean().item()
    assert abs(leaky.weights[1].item() - (0.7 + 0.3 * mixture.weights[1].item())) < 1e-12
    assert from_class_1 < 0.95
    with pytest.raises(ValueError, match="lam"):
        ex04.leaky_mixture(mixture, 1, 1.0)


def test_expected_sampler_optima_match_exercise_2():
    found = ex04.expected_sampler_optima((10, 20, 50, 200))
    diversities = [found[s][1] for s in (10, 20, 50, 200)]
    assert diversities == sorted(diversities)                          # rises with the number of steps
    exact = toy.anisotropic().sample(1000, 1, generator=torch.Generator().manual_seed(0))[0]
    assert diversities[-1] < course_lib.metrics.mean_pairwise_distance(exact) * 1.02   # towards the exact value
    assert found[10][0] < 0 and found[20][0] < 0                       # negative at 10 and 20 steps
    assert found[50][0] == 0.0 and found[200][0] == 0.0                # 0 from 50 steps on


def test_expected_leak_optima_match_exercise_3():
    found = ex04.expected_leak_optima((0.1, 0.2, 0.3, 0.4))
    best = [found[lam] for lam in (0.1, 0.2, 0.3, 0.4)]
    assert best == sorted(best) and best[0] < best[-1]                 # grows with lam
    assert all(found[lam] > leak_repair_weight(lam) for lam in found)  # above the blend's repair weight


def test_expected_mnist_optima_match_exercise_1():
    found = ex04.expected_mnist_optima((1,), ws=(0.0, 0.5, 1.0, 2.0, 5.0))[1]
    assert min(found, key=found.get) == 1.0                            # the best w at 1
    assert found[0.0] > 2 * found[1.0] and found[5.0] > 2 * found[1.0]      # more than twice the minimum


def test_lesson_solutions_run_in_a_fresh_interpreter_with_the_graders_imports_only():
    """The grader runs each solution cell alone after `import math, numpy as np, torch, course_lib`."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    sources = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    calls = {"knn_precision": "knn_precision(torch.randn(20, 2), torch.randn(10, 2), 3)",
             "frechet_to_class": "frechet_to_class(torch.randn(20, 2), torch.zeros(2, dtype=torch.float64), "
                                 "torch.eye(2, dtype=torch.float64))",
             "leak_repair_weight": "leak_repair_weight(0.25)"}
    assert sorted(sources) == sorted(calls)
    for name, source in sources.items():
        program = f"import math\nimport numpy as np\nimport torch\nimport course_lib\n{source}\nprint({calls[name]})\n"
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (name, result.stderr[-500:])
        float(result.stdout.strip().splitlines()[-1])
