"""Coursework: student versions carry no answers and no hidden material; the source folder is an
explicit option (an installed package has no instructor/lessons/); every graded exercise of every lesson
has a registry entry with the lesson's points."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from course_lib import coursework, exercises  # noqa: E402
from course_lib.coursework import material  # noqa: E402

SOLUTION = '''def cfg_eps(eps_cond, eps_uncond, w):
    """The CFG prediction for guidance weight w."""
    ### BEGIN SOLUTION
    return (1 + w) * eps_cond - w * eps_uncond
    ### END SOLUTION'''
CHECK = 'checks.check("cfg_eps", cfg_eps)'


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
                                                                 points=1)),
                nbformat.v4.new_code_cell("print('the lesson goes on')")]
    nbformat.write(nb, folder / "03_tiny.ipynb")
    return folder


def test_student_version_stubs_the_answer_and_names_the_exercise(source, tmp_path):
    (path,) = coursework.release(tmp_path / "student", source=source)
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "(1 + w) * eps_cond" not in text and "SOLUTION" not in text
    assert 'raise NotImplementedError("exercise cfg_eps' in text
    assert '"""The CFG prediction for guidance weight w."""' in text  # the interface stays
    assert CHECK in text
    (grade_cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert grade_cell.metadata.editable is False and grade_cell.metadata.deletable is False
    assert all(c.get("outputs", []) == [] for c in nb.cells)


def test_release_never_replaces_files_unless_forced(source, tmp_path):
    coursework.release(tmp_path / "student", source=source)
    with pytest.raises(FileExistsError, match="already in"):
        coursework.release(tmp_path / "student", source=source)
    assert coursework.release(tmp_path / "student", source=source, force=True)


def test_the_source_folder_is_an_explicit_option(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--source"):
        coursework.lessons(tmp_path / "missing")
    with pytest.raises(ValueError, match="--source .*found none"):
        coursework.lessons(tmp_path)
    # installed without a checkout (site-packages/course_lib): no default, an error naming --source
    monkeypatch.setattr(material, "CHECKOUT", tmp_path)
    with pytest.raises(ValueError, match="pass --source DIR"):
        coursework.lessons()
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "release", str(tmp_path / "out"),
                           "--source", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--source" in done.stderr and "Traceback" not in done.stderr


def test_release_writes_every_lesson_with_the_edition_note(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "release", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(coursework.lessons())
    for path in coursework.lessons():
        released = (tmp_path / path.name).read_text()
        assert released == (path.parents[2] / "notebooks" / path.name).read_text()  # the same as the edition


def test_every_graded_exercise_of_every_lesson_is_registered_with_its_points():
    for path in coursework.lessons():
        nb = nbformat.read(path, as_version=4)
        lesson = Path(path).stem
        solutions = coursework.solution_cells(nb)
        for name in solutions:
            assert name in exercises.REGISTRY, f"{path.name}: exercise {name} has no registry entry"
            assert exercises.get(name).lesson == lesson
        cells = nb.cells
        for i, cell in enumerate(cells):
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and meta.get("grade_id") in exercises.REGISTRY:
                grade = next(c for c in cells[i + 1:] if c.metadata.get("nbgrader", {}).get("grade"))
                assert grade.metadata.nbgrader["points"] == exercises.get(meta["grade_id"]).points, meta["grade_id"]


def test_grade_names_a_missing_submission_or_source_folder(tmp_path):
    def grade(*args):
        return subprocess.run([sys.executable, "-m", "course_lib.coursework", "grade", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    done = grade(tmp_path / "nothing.ipynb")
    assert done.returncode == 2 and "no such notebook or folder" in done.stderr
    (tmp_path / "empty_class").mkdir()
    done = grade(tmp_path / "empty_class")
    assert done.returncode == 2 and "<student>/<NN_lesson>.ipynb" in done.stderr
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "03_x.ipynb")
    done = grade(tmp_path / "03_x.ipynb", "--source", tmp_path / "missing")
    assert done.returncode == 2 and "--source" in done.stderr and "Traceback" not in done.stderr


def test_submissions_are_found_in_nbgrader_layouts(tmp_path):
    for path in ("alice/03_classifier_free_guidance.ipynb", "bob/ps3/03_classifier_free_guidance.ipynb",
                 "carol/.ipynb_checkpoints/03_classifier_free_guidance.ipynb"):
        (tmp_path / "submitted" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "submitted" / path).write_text("{}")
    found = coursework.find_submissions([tmp_path / "submitted"])
    assert [(p.relative_to(tmp_path / "submitted").as_posix(), s) for p, s in found] == [
        ("alice/03_classifier_free_guidance.ipynb", "alice"), ("bob/ps3/03_classifier_free_guidance.ipynb", "bob")]
    lone = tmp_path / "submitted" / "bob" / "ps3" / "03_classifier_free_guidance.ipynb"
    assert coursework.find_submissions([lone]) == [(lone, "ps3")]
    (tmp_path / "dave" / "03_classifier_free_guidance").mkdir(parents=True)
    inside = tmp_path / "dave" / "03_classifier_free_guidance" / "03_classifier_free_guidance.ipynb"
    inside.write_text("{}")
    assert coursework.find_submissions([inside]) == [(inside, "dave")]  # assignment folder named after the lesson


def test_gradebooks_from_several_machines_merge_by_student(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("student,lesson,score,max_score,status,cfg_eps,file,note\nzoe,03_x,1,1,ok,1,z.ipynb,\n")
    b.write_text("student,lesson,score,max_score,status,forward_noise,file,note\nadam,00_y,0,1,timeout,0,a.ipynb,\n")
    assert coursework.batch.merge_csv([a, b], tmp_path / "all.csv") == 2
    lines = (tmp_path / "all.csv").read_text().splitlines()
    assert lines == ["student,lesson,score,max_score,status,cfg_eps,forward_noise,file,note",
                     "adam,00_y,0,1,timeout,,0,a.ipynb,", "zoe,03_x,1,1,ok,1,,z.ipynb,"]


def test_without_nbgrader_every_command_says_how_to_install_it_in_one_line(tmp_path):
    blocker = ("import sys, runpy\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'nbgrader':\n"
               "            raise ImportError('no nbgrader here')\n"
               "sys.meta_path.insert(0, Block())\n"
               "sys.argv = ['coursework', *sys.argv[1:]]\n"
               "runpy.run_module('course_lib.coursework', run_name='__main__')\n")
    for args in (["release", str(tmp_path / "out")], ["build-edition"], ["grade", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-c", blocker, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "pip install nbgrader" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
