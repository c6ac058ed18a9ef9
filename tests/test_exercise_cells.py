"""Every lesson's graded exercises, as the source notebooks hold them: each solution cell, run with
only the grader's imports (no notebook globals), passes the public and hidden cases, and is followed
by its grade cell ``checks.check("<name>", <name>)`` worth the registry's points."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import course_lib
from course_lib import exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("lesson", exercises.lessons())
def test_solution_cells_pass_every_case_alone(lesson):
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    for exercise in exercises.for_lesson(lesson):
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise.name]
        assert len(cells) == 1, exercise.name
        namespace = {"math": math, "np": np, "torch": torch, "course_lib": course_lib}
        exec(cells[0].source, namespace)  # noqa: S102 - the lesson's own solution
        gen = torch.Generator().manual_seed(5)
        errors = exercise.errors(namespace[exercise.name], exercise.public_cases(gen) + exercise.hidden_cases(gen))
        assert max(errors) <= exercise.tolerance, (exercise.name, errors)
        grade = nb.cells[nb.cells.index(cells[0]) + 1]
        assert grade.source.startswith(f'checks.check("{exercise.name}", {exercise.name})')
        assert grade.metadata["nbgrader"]["points"] == exercise.points
