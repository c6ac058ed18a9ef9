"""Every source lesson's reference solutions, each solution cell run by itself in the grader's
sandboxed harness (no notebook globals), pass every hidden case: the lessons keep the exercise
contract (one function per solution cell, only its arguments, math, np, torch and course_lib)."""

import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib import coursework, exercises  # noqa: E402
from course_lib.coursework import grading, sandbox  # noqa: E402


@pytest.mark.parametrize("path", coursework.lessons(), ids=lambda p: p.stem)
def test_reference_solutions_run_alone_earn_full_marks(path):
    graded = exercises.for_lesson(path.stem)
    if not graded:
        pytest.skip(f"{path.stem} has no graded exercise")
    nb = nbformat.read(path, as_version=4)
    sources = grading.solution_sources(nb, [e.name for e in graded])
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        results = grading._grade_functions(graded, sources, Path(tmp) / "harness", sandbox.minimal_env(Path(tmp), None),
                                           grading.Limits(cell_timeout=120))
    failed = {name: r.message for name, r in results.items() if r.points != r.max_points}
    assert not failed, failed
