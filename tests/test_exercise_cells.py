"""Every lesson's graded exercises, as the solved source lessons hold them: each solution cell, run
with only the grader's imports (no notebook globals), passes the instant check (stored answers) and
the hidden cases of two seeds, and is followed by its grade cell ``checks.check("<name>", <name>)``
worth the exercise's points."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import course_lib
from course_lib import checks
from instructor import exercises as graded

LESSONS = Path(__file__).resolve().parents[1] / "instructor" / "lessons"


@pytest.mark.parametrize("lesson", graded.lessons())
def test_solution_cells_pass_every_case_alone(lesson, capsys):
    nb = nbformat.read(LESSONS / f"{lesson}.ipynb", as_version=4)
    for item in graded.for_lesson(lesson):
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == item.name]
        assert len(cells) == 1, item.name
        namespace = {"math": math, "np": np, "torch": torch, "course_lib": course_lib}
        exec(cells[0].source, namespace)  # noqa: S102 - the lesson's own solution
        checks.check(item.name, namespace[item.name])
        assert capsys.readouterr().out.startswith(f"✓ {item.name}"), item.name
        for seed in (5, 6):
            errors = item.errors(namespace[item.name], item.grading.hidden_cases(torch.Generator().manual_seed(seed)))
            assert max(errors) <= item.exercise.tolerance, (item.name, seed, errors)
        grade = nb.cells[nb.cells.index(cells[0]) + 1]
        assert grade.source.startswith(f'checks.check("{item.name}", {item.name})')
        assert grade.metadata["nbgrader"]["points"] == item.points
