"""The source lessons and their student versions (nbgrader's format).

The lessons are the *source* versions: each graded exercise is a solution cell (``grade_id``
= the exercise name) whose answer sits between ``### BEGIN SOLUTION`` and ``### END
SOLUTION``, followed by a locked grade cell calling the instant check. The student version
replaces each answer by a stub naming the exercise, removes hidden tests and outputs, locks
the grade cells and records checksums, with nbgrader's own preprocessors.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

STUB = ('# YOUR CODE HERE\nraise NotImplementedError("exercise {name}: write this part, '
        'then run the check in the next cell")')
_CHECKOUT = Path(__file__).resolve().parents[2]


def _nbgrader():
    try:
        from nbgrader import utils
        from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, ComputeChecksums, LockCells
    except ImportError as err:
        raise RuntimeError("coursework needs nbgrader: run `python -m pip install nbgrader`") from err
    return utils, ClearSolutions, ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums


def source_folder(source: str | Path | None) -> Path:
    """The folder of source lessons: ``source`` when given, else the checkout's ``notebooks/``
    if this package runs from a checkout; ``ValueError`` naming ``--source`` otherwise."""
    if source is None:
        if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "notebooks").is_dir():
            return _CHECKOUT / "notebooks"
        raise ValueError("no source lessons: pass --source DIR (source=...), the folder of the instructor's "
                         "NN_name.ipynb lessons (an installed package does not carry them)")
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
    utils = _nbgrader()[0]
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if utils.is_grade(c)}


def solution_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """The notebook's solution code cells by ``grade_id`` (the exercise names)."""
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") and
            c.metadata.nbgrader.get("grade_id")}


def student_version(nb):
    """A copy of source notebook ``nb`` with answers stubbed (each stub names its exercise),
    hidden tests, outputs and widget state removed, grade cells locked and checksums recorded."""
    utils, ClearSolutions, ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums = _nbgrader()
    nb = copy.deepcopy(nb)
    resources = {"language": "python"}
    for i, cell in enumerate(nb.cells):
        if utils.is_solution(cell):
            stub = STUB.format(name=cell.metadata.nbgrader["grade_id"])
            ClearSolutions(code_stub={"python": stub}).preprocess_cell(cell, resources, i)
    for step in (ClearHiddenTests(), ClearOutput(), LockCells(), ComputeChecksums()):
        nb, resources = step.preprocess(nb, resources)
    nb.metadata.pop("widgets", None)
    return nb


def release(dest: str | Path, *, source: str | Path | None = None, force: bool = False) -> list[Path]:
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
        nbformat.write(student_version(nbformat.read(path, as_version=4)), target)
    return targets
