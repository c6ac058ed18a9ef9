"""Coursework: student versions hide answers and hidden tests; grading restores the
instructor's checks and scores what runs."""

import subprocess
import sys

import nbformat
import pytest

pytest.importorskip("nbgrader")

from course_lib import coursework  # noqa: E402

SOLUTION = '''def cfg_eps(eps_cond, eps_uncond, w):
    # 1. weight the conditional prediction by 1 + w and the unconditional one by -w
    ### BEGIN SOLUTION
    return (1 + w) * eps_cond - w * eps_uncond
    ### END SOLUTION'''
CHECK = '''checks.check_cfg_eps(cfg_eps)
### BEGIN HIDDEN TESTS
checks.check_cfg_eps(cfg_eps, seed=11)
### END HIDDEN TESTS'''


def _meta(grade_id, *, grade, solution, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": grade, "schema_version": 3, "solution": solution,
            "task": False}
    return {"nbgrader": meta | ({"points": points} if points else {})}


@pytest.fixture
def source(tmp_path):
    """A one-exercise source lesson in its own folder."""
    folder = tmp_path / "source"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from course_lib import checks"),
                nbformat.v4.new_code_cell(SOLUTION, metadata=_meta("cfg_eps", grade=False, solution=True)),
                nbformat.v4.new_code_cell(CHECK, metadata=_meta("check_cfg_eps", grade=True, solution=False,
                                                                 points=2)),
                nbformat.v4.new_code_cell("print('the lesson goes on')")]
    nbformat.write(nb, folder / "00_tiny.ipynb")
    return folder


def test_student_version_hides_answers_and_hidden_tests(source, tmp_path):
    (path,) = coursework.release(tmp_path / "student", source=source)
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "(1 + w) * eps_cond" not in text and "SOLUTION" not in text and "HIDDEN" not in text
    assert 'raise NotImplementedError("exercise cfg_eps' in text
    assert "# 1. weight the conditional" in text  # the numbered steps stay
    assert "checks.check_cfg_eps(cfg_eps)" in text and "seed=11" not in text
    grade_cell = nb.cells[2]
    assert grade_cell.metadata.editable is False and grade_cell.metadata.deletable is False
    assert all(c.get("outputs", []) == [] for c in nb.cells)


def test_release_never_replaces_files_unless_forced(source, tmp_path):
    coursework.release(tmp_path / "student", source=source)
    with pytest.raises(FileExistsError, match="already in"):
        coursework.release(tmp_path / "student", source=source)
    assert coursework.release(tmp_path / "student", source=source, force=True)


def test_grading_scores_answers_and_restores_the_instructors_checks(source, tmp_path):
    (student,) = coursework.release(tmp_path / "student", source=source)
    grade = coursework.grade(student, source=source)
    assert (grade.score, grade.max_score, str(grade)) == (0, 2, "00_tiny: 0/2")  # the stub raises

    nb = nbformat.read(student, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace(
        '# YOUR CODE HERE\n    raise NotImplementedError("exercise cfg_eps: write this part, then run the check in '
        'the next cell")', "return (1 + w) * eps_cond - w * eps_uncond")
    solved = tmp_path / "solved" / "00_tiny.ipynb"
    solved.parent.mkdir()
    nbformat.write(nb, solved)
    assert coursework.grade(solved, source=source).score == 2

    nb.cells[1].source = nb.cells[1].source.replace("(1 + w) * eps_cond - w * eps_uncond", "w * eps_cond")
    nb.cells[2].source = "pass  # a student who edits the check away"
    nbformat.write(nb, solved)
    assert coursework.grade(solved, source=source).score == 0


def test_grade_names_the_allowed_notebooks(source, tmp_path):
    stray = tmp_path / "homework.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), stray)
    with pytest.raises(ValueError, match="00_tiny.ipynb"):
        coursework.grade(stray, source=source)


def test_every_lesson_has_a_graded_exercise_with_a_hidden_test():
    for path in coursework.lessons():
        nb = nbformat.read(path, as_version=4)
        cells = coursework.grade_cells(nb)
        assert cells, f"{path.name} has no graded exercise"
        assert all("BEGIN HIDDEN TESTS" in c.source for c in cells.values())


def test_a_released_lesson_runs_to_the_end_and_scores_zero_unsolved(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "release", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(coursework.lessons())
    lesson = tmp_path / "03_classifier_free_guidance.ipynb"
    before = lesson.read_bytes()
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "grade", str(lesson)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "03_classifier_free_guidance: 0/2"
    assert lesson.read_bytes() == before  # grading never writes to the student's file
