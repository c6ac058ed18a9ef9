"""Every source lesson's reference solutions (instructor/lessons/), each solution cell run by itself
through the grader's real path (one sandboxed harness per exercise, its twins tripped, the guard
on), pass every hidden case: the lessons keep the exercise contract (one function per solution
cell, only its arguments, math, np, torch and course_lib) and no honest solution reaches a twin."""

import sys

import nbformat
import pytest

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib.coursework import grading, material, sandbox  # noqa: E402

MATERIAL = material.load()
LESSONS = sorted(material.lessons_folder().glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_reference_solutions_run_alone_earn_full_marks(path):
    lesson = MATERIAL.for_lesson(path.stem)
    if not lesson:
        pytest.skip(f"{path.stem} has no graded exercise")
    nb = nbformat.read(path, as_version=4)
    sources = grading.solution_sources(nb, [g.name for g in lesson])
    results = grading._grade_functions(lesson, sources, grading.Limits(cell_timeout=120),
                                       sandboxed=sandbox.unavailable() is None)
    failed = {name: r.message for name, r in results.items() if r.points != r.max_points}
    assert not failed, failed
