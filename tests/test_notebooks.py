"""Every lesson runs top to bottom in a fresh kernel and is committed without outputs: the student
edition untouched (every check says "not attempted yet" and Run All still reaches the last cell)
and the solved source lessons."""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDENT = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLVED = sorted((ROOT / "instructor" / "lessons").glob("*.ipynb"))


def test_there_are_lessons():
    assert [p.name for p in STUDENT][:1] == ["00_diffusion_refresher.ipynb"]


@pytest.mark.parametrize("path", STUDENT + SOLVED, ids=[f"{p.parent.name}/{p.stem}" for p in STUDENT + SOLVED])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state must not be committed"


def _execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    print(f"{path.parent.name}/{path.name}: {time.perf_counter() - start:.1f} s")
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert "Warning" not in text, f"{path.name} printed a warning:\n{text}"
    return nb


def _check_outputs(nb) -> list[str]:
    return ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_an_untouched_student_lesson_runs_to_its_last_cell(path):
    checks = _check_outputs(_execute(path))
    assert checks and all("not attempted yet" in text for text in checks), checks


@pytest.mark.parametrize("path", SOLVED, ids=[p.stem for p in SOLVED])
def test_a_solved_lesson_runs_top_to_bottom_and_passes_its_checks(path):
    checks = _check_outputs(_execute(path))
    assert checks and all(text.startswith("✓") for text in checks), checks


@pytest.mark.parametrize("path", SOLVED, ids=[p.stem for p in SOLVED])
def test_every_code_cell_compiles_without_a_warning(path):
    """An invalid escape such as "\\mid" in a plain string is a warning today and an error in a later Python."""
    import warnings

    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code" and not cell.source.lstrip().startswith(("%", "!")):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                compile(cell.source, f"{path.name} cell {i}", "exec")
