"""The source lessons and their student edition (nbgrader's format).

The source lessons (``instructor/lessons/``) hold the worked solutions: each graded exercise is
a solution cell (``grade_id`` = the exercise name) whose answer sits between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``, followed by a locked grade cell calling the instant check.
The student edition replaces each answer by a stub naming the exercise, removes hidden tests,
outputs and widget state, locks the grade cells, records checksums (nbgrader's own
preprocessors) and opens with a note saying where the worked solutions are.
:func:`build_edition` writes it to ``notebooks/`` with the public answers of the instant checks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import nbformat

from .. import colab, exercises
from ..exercises import expected
from . import material

STUB = ('# YOUR CODE HERE\nraise NotImplementedError("exercise {name}: write this part, '
        'then run the check in the next cell")')
EDITION_NOTE_ID = "student-edition-note"
EDITION_NOTE = "*Student edition.* Worked solutions: `instructor/lessons/{name}` in the course's repository.\n"


def require_nbgrader():
    """nbgrader's utilities and preprocessors; ``RuntimeError`` saying how to install it."""
    try:
        from nbgrader import utils
        from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, ComputeChecksums, LockCells
    except ImportError as err:
        raise RuntimeError("coursework needs nbgrader: run `python -m pip install nbgrader`") from err
    return utils, ClearSolutions, ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums


def source_folder(source: str | Path | None) -> Path:
    """The folder of source lessons: ``source`` when given, else the checkout's
    ``instructor/lessons/``; ``ValueError`` naming ``--source`` otherwise."""
    if source is None:
        try:
            return material.lessons_folder()
        except ValueError:
            raise ValueError("no source lessons: pass --source DIR (source=...), the folder of the instructor's "
                             "solved NN_name.ipynb lessons (an installed package does not carry them)") from None
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"--source must be a folder of lessons (NN_name.ipynb); {folder} is not a folder")
    return folder


def lessons(source: str | Path | None = None) -> list[Path]:
    """The source lessons, in teaching order; ``ValueError`` if the folder holds none."""
    folder = source_folder(source)
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise ValueError(f"--source must be a folder of lessons (NN_name.ipynb); found none in {folder}")
    return paths


def grade_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """The notebook's grade cells by ``grade_id``."""
    utils = require_nbgrader()[0]
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if utils.is_grade(c)}


def solution_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """The notebook's solution code cells by ``grade_id`` (the exercise names)."""
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") and
            c.metadata.nbgrader.get("grade_id")}


def student_version(nb, name: str = "this lesson", first_cells: list[nbformat.NotebookNode] = ()):
    """A copy of source notebook ``nb`` (file name ``name``) with answers stubbed (each stub
    names its exercise), hidden tests, outputs and widget state removed, grade cells locked,
    checksums recorded, and the student-edition note (then ``first_cells``) at the top."""
    utils, ClearSolutions, ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums = require_nbgrader()
    nb = copy.deepcopy(nb)
    resources = {"language": "python"}
    for i, cell in enumerate(nb.cells):
        if utils.is_solution(cell):
            stub = STUB.format(name=cell.metadata.nbgrader["grade_id"])
            ClearSolutions(code_stub={"python": stub}).preprocess_cell(cell, resources, i)
    for step in (ClearHiddenTests(), ClearOutput(), LockCells(), ComputeChecksums()):
        nb, resources = step.preprocess(nb, resources)
    nb.metadata.pop("widgets", None)
    note = nbformat.v4.new_markdown_cell(EDITION_NOTE.format(name=name))
    note["id"] = EDITION_NOTE_ID
    nb.cells[1:1] = [note, *copy.deepcopy(list(first_cells))]
    return nb


def release(dest: str | Path, *, source: str | Path | None = None, force: bool = False,
            first_cells: list[nbformat.NotebookNode] = ()) -> list[Path]:
    """Write the student version of every source lesson into ``dest``; returns the paths.
    An existing file is never replaced unless ``force``."""
    dest = Path(dest)
    paths = lessons(source)
    targets = [dest / p.name for p in paths]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} student notebook(s) already in {dest}, e.g. {existing[0]}; "
                              "pass force=True (--force) to replace them")
    dest.mkdir(parents=True, exist_ok=True)
    for path, target in zip(paths, targets):
        nbformat.write(student_version(nbformat.read(path, as_version=4), path.name, first_cells), target)
    return targets


def public_answers(graded: dict) -> dict[str, tuple[list[tuple], list]]:
    """``{name: (public cases, the reference's outputs on them)}`` for every graded exercise."""
    table = {}
    for name, item in graded.items():
        cases = item.exercise.cases()
        table[name] = (cases, [_plain(item.grading.reference(*args)) for args in cases])
    return table


def _plain(value):
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value.detach().clone() if hasattr(value, "detach") else value


def build_edition(instructor: str | Path | None = None, *, report: Callable[[str], None] = print) -> list[Path]:
    """Rebuild what a learner gets from the instructor sources: the instant checks' stored
    answers (``course_lib/exercises/expected.pt``) and the student edition (the checkout's
    ``notebooks/``); returns the notebooks written."""
    folder = material.instructor_folder(instructor)
    table = public_answers(material.load(folder).GRADED)
    expected.write(table)
    report(f"wrote {expected.EXPECTED} ({len(table)} exercises)")
    paths = release(folder.parent / "notebooks", source=folder / "lessons", force=True,
                    first_cells=edition_first_cells())
    for path in paths:
        report(f"wrote {path}")
    return paths


def edition_first_cells() -> list[nbformat.NotebookNode]:
    """Cells every student lesson opens with (after its title and the edition note): the
    Colab-only install cell (:mod:`course_lib.colab`; it does nothing elsewhere)."""
    cell = nbformat.v4.new_code_cell(colab.install_cell_source())
    cell["id"] = "colab-install"
    return [cell]


def unregistered(source: Path) -> list[str]:
    """Solution cells of the source lessons that no registered exercise grades."""
    return [f"{path.name}: {name}" for path in lessons(source)
            for name in solution_cells(nbformat.read(path, as_version=4)) if name not in exercises.REGISTRY]
