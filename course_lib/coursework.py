"""Graded coursework from the lessons, in nbgrader's format (STYLE.md section 7).

The lessons in ``notebooks/`` are the *source* versions: each graded exercise is a
solution cell whose answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``,
followed by a locked grade cell that calls a check from :mod:`course_lib.checks`, with
more checks between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``.

``python -m course_lib.coursework release DIR`` writes the student versions of every
lesson: nbgrader's own preprocessors replace each answer by a stub that names the
exercise, remove the hidden tests and outputs, lock the grade cells and record
checksums. ``python -m course_lib.coursework grade NOTEBOOK...`` restores every grade
cell (hidden tests included) from the source lesson of the same name, runs the
notebook top to bottom in a fresh kernel (errors do not stop it), scores each grade
cell as nbgrader's autograder does and prints ``NAME: SCORE/MAX`` per notebook.
Needs ``nbgrader`` (``pip install nbgrader``); a full nbgrader course (gradebook,
feedback, JupyterHub) can use the source lessons directly.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOURCE = Path(__file__).resolve().parents[1] / "notebooks"
STUB = ('# YOUR CODE HERE\nraise NotImplementedError("exercise {name}: write this part, '
        'then run the check in the next cell")')


@dataclass
class Grade:
    """The result of grading one notebook: total and the score of each grade cell."""

    name: str
    score: float
    max_score: float
    cells: dict[str, float]

    def __str__(self) -> str:
        return f"{self.name}: {self.score:g}/{self.max_score:g}"


def _nbgrader():
    try:
        from nbgrader import utils
        from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, ComputeChecksums, LockCells
    except ImportError as err:
        raise RuntimeError("coursework needs nbgrader: run `python -m pip install nbgrader`") from err
    return utils, ClearSolutions, ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums


def lessons(source: Path = SOURCE) -> list[Path]:
    """The source lessons, in teaching order; ``ValueError`` if the folder holds none."""
    paths = sorted(Path(source).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise ValueError(f"source must be a folder of lessons (NN_name.ipynb); found none in {source}")
    return paths


def grade_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """The notebook's grade cells by ``grade_id``."""
    utils = _nbgrader()[0]
    return {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if utils.is_grade(c)}


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


def release(dest: str | Path, *, source: str | Path = SOURCE, force: bool = False) -> list[Path]:
    """Write the student version of every source lesson into ``dest``; returns the paths.
    An existing file is never replaced unless ``force``."""
    dest = Path(dest)
    paths = lessons(Path(source))
    targets = [dest / p.name for p in paths]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} student notebook(s) already in {dest}, e.g. {existing[0]}; "
                              "pass force=True (--force) to replace them")
    dest.mkdir(parents=True, exist_ok=True)
    for path, target in zip(paths, targets):
        nbformat.write(student_version(nbformat.read(path, as_version=4)), target)
    return targets


def grade(path: str | Path, *, source: str | Path = SOURCE, timeout: int = 900) -> Grade:
    """Grade one submitted notebook against the source lesson of the same file name."""
    from nbclient import NotebookClient

    utils = _nbgrader()[0]
    path = Path(path)
    names = {p.name: p for p in lessons(Path(source))}
    if path.name not in names:
        raise ValueError(f"notebook must be named like a lesson ({', '.join(sorted(names))}), got {path.name}")
    reference = grade_cells(nbformat.read(names[path.name], as_version=4))
    nb = nbformat.read(path, as_version=4)
    submitted = grade_cells(nb)
    for gid, cell in submitted.items():  # the instructor's checks, hidden tests included, whatever was submitted
        if gid in reference:
            cell.source, cell.metadata = reference[gid].source, copy.deepcopy(reference[gid].metadata)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(names[path.name].parent)}}).execute()
    scores = {gid: 0.0 for gid in reference}  # a deleted grade cell scores nothing
    for gid, cell in grade_cells(nb).items():
        if gid in reference:
            score, _ = utils.determine_grade(cell)
            scores[gid] = float(score or 0.0)
    max_score = sum(float(c.metadata.nbgrader["points"]) for c in reference.values())
    return Grade(path.stem, sum(scores.values()), max_score, scores)


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.coursework release DIR [--force]`` | ``grade NOTEBOOK...``."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.coursework", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="write the student version of every lesson into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--force", action="store_true", help="replace student notebooks already in DIR")
    p = sub.add_parser("grade", help='run and grade submitted notebooks; prints "NAME: SCORE/MAX" for each')
    p.add_argument("notebooks", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "release":
        try:
            paths = release(args.dir, force=args.force)
        except FileExistsError as err:
            parser.error(str(err))
        for path in paths:
            print(f"wrote {path}")
        return 0
    for path in args.notebooks:
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
    for path in args.notebooks:
        print(grade(path), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
