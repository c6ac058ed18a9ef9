"""The student edition is what a learner opens: generated from the instructor sources (CI fails when
it is stale), with empty exercises and a note that says where the worked solutions are; the
package a student installs holds no reference and no hidden-case generator."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from course_lib import exercises
from course_lib.coursework import versions
from course_lib.exercises import expected
from instructor import exercises as graded

pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "instructor" / "lessons").glob("[0-9][0-9]_*.ipynb"))
STUDENT = ROOT / "notebooks"


def test_every_source_lesson_has_its_student_edition_and_nothing_else():
    assert [p.name for p in SOURCES] == sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert SOURCES[0].name == "00_diffusion_refresher.ipynb"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_student_edition_is_the_generated_one(source):
    """Rebuild with ``python -m course_lib.coursework build-edition`` when this fails."""
    nb = versions.student_version(nbformat.read(source, as_version=4), source.name, versions.edition_first_cells())
    committed = (STUDENT / source.name).read_text()
    assert nbformat.writes(nb) + "\n" == committed or nbformat.writes(nb) == committed, (
        f"notebooks/{source.name} is stale: run `python -m course_lib.coursework build-edition`")


def test_the_stored_answers_are_the_references_on_the_public_cases():
    """Rebuild with ``python -m course_lib.coursework build-edition`` when this fails."""
    table = versions.public_answers(graded.GRADED)
    assert sorted(table) == sorted(exercises.REGISTRY)
    for name, (cases, outputs) in table.items():
        stored = expected.outputs(name, cases)  # StaleExpected if the cases changed
        assert exercises.difference(stored, tuple(outputs), name) <= 1e-12, name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_student_edition_carries_no_answer_and_says_where_the_solutions_are(source):
    cells = [c.source for c in nbformat.read(source, as_version=4).cells]
    blocks = [part.split("### END SOLUTION")[0] for src in cells for part in src.split("### BEGIN SOLUTION")[1:]]
    outside = "\n".join(cells)
    for block in blocks:
        outside = outside.replace(block, "")
    answers = {line.strip() for block in blocks for line in block.splitlines()
               if len(line.strip()) > 12 and line.strip() not in outside}
    student = nbformat.read(STUDENT / source.name, as_version=4)
    released = "\n".join(c.source for c in student.cells)
    assert not [a for a in answers if a in released], source.name
    assert "BEGIN HIDDEN TESTS" not in released and "BEGIN SOLUTION" not in released
    stubs = [c.source for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(blocks) and all("raise NotImplementedError(\"exercise " in s for s in stubs)
    note = next(c.source for c in student.cells if c.get("id") == versions.EDITION_NOTE_ID)
    assert f"instructor/lessons/{source.name}" in note and (ROOT / "instructor" / "lessons" / source.name).is_file()


def _functions(path: Path) -> dict[str, str]:
    """``name -> source`` of every function defined in ``path``."""
    text = path.read_text()
    return {n.name: ast.get_source_segment(text, n) for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)}


@pytest.fixture(scope="module")
def student_install(tmp_path_factory):
    """The package installed as a student installs it (not editable), into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return target


def _python(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", code], cwd=site.parent, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_student_install_holds_no_reference_and_no_hidden_cases(student_install):
    installed = sorted((student_install / "course_lib").rglob("*.py"))
    assert installed and not (student_install / "instructor").exists()
    lesson_modules = [p for p in (ROOT / "instructor" / "exercises").glob("*.py") if p.stem not in ("__init__", "core")]
    secret = {name: src for p in lesson_modules for name, src in _functions(p).items()}
    shipped = {src for p in installed for src in _functions(p).values()}
    assert secret and not [name for name, src in secret.items() if src in shipped]  # no reference's code ships
    done = _python(student_install, "import course_lib.exercises as e, course_lib; print(course_lib.__file__)\n"
                                    "import instructor")
    assert str(student_install) in done.stdout and "No module named 'instructor'" in done.stderr
    probe = ("import course_lib.exercises as e\n"
             "for ex in e.REGISTRY.values():\n"
             "    assert not hasattr(ex, 'reference') and not hasattr(ex, 'hidden_cases'), ex.name\n"
             "from course_lib.coursework import material\n"
             "try:\n    material.load()\nexcept ValueError as err:\n    print('refused:', err)\n")
    done = _python(student_install, probe)
    assert done.returncode == 0, done.stderr
    assert "refused: no instructor material: pass --instructor DIR" in done.stdout


def test_a_student_install_runs_the_instant_checks(student_install):
    name = sorted(exercises.REGISTRY)[0]
    code = (f"from course_lib import checks\n"
            f"def stub(*a):\n    raise NotImplementedError\n"
            f"checks.check({name!r}, stub)\n")
    done = _python(student_install, code)
    assert done.returncode == 0 and "not attempted yet" in done.stdout, done.stderr
    assert (student_install / "course_lib" / "exercises" / "expected.pt").is_file()


def test_build_edition_refuses_a_folder_that_is_not_the_instructor_material(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "build-edition", "--instructor",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--instructor must be the course's instructor/ folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert torch.load(expected.EXPECTED, weights_only=True)  # untouched
