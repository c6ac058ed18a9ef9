"""The real grader through its command line, killed with SIGKILL in the middle of a batch and run
again with --resume: every row finished before the kill stays as it was, no submission is graded
twice, and the gradebook ends with one row per submission. A tiny synthetic lesson (``99_test``,
one exercise) in a synthetic instructor folder keeps each submission to a few seconds."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib.coursework import sandbox  # noqa: E402
from course_lib.coursework.gradebook import REGRADE  # noqa: E402

CHECKOUT = Path(__file__).resolve().parents[1]
MATERIAL = '''"""A synthetic instructor folder: one exercise, lesson 99_test."""
import torch
from course_lib.exercises import Exercise
from .core import Graded, Grading


def _cases(gen):
    return [(torch.randn(5, generator=gen),), (torch.zeros(1, 3, dtype=torch.float64),)]


def _reference(x):
    return 2 * x


PUBLIC = Exercise(name="double", lesson="99_test", points=1, public_cases=_cases, hint="twice")
GRADED = {"double": Graded(PUBLIC, Grading("double", reference=_reference, hidden_cases=_cases,
                                           understanding="doubling", shortcut="none"))}


def get(name):
    return GRADED[name]


def lessons():
    return ["99_test"]


def for_lesson(lesson):
    return [g for g in GRADED.values() if g.lesson == lesson]
'''


def _instructor(tmp: Path) -> Path:
    folder = tmp / "instructor"
    (folder / "exercises").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "exercises" / "__init__.py").write_text(MATERIAL)
    shutil.copy(CHECKOUT / "instructor" / "exercises" / "core.py", folder / "exercises" / "core.py")
    return folder


def _lesson(answer: str) -> nbformat.NotebookNode:
    meta = {"nbgrader": {"grade": False, "grade_id": "double", "locked": False, "schema_version": 3,
                         "solution": True, "task": False}}
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(answer, metadata=meta),
                nbformat.v4.new_code_cell("print('the end')")]
    return nb


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_batch_killed_with_sigkill_resumes_without_regrading(tmp_path):
    submitted = tmp_path / "submitted"
    students = ["ann", "ben", "cat", "dan"]
    for i, student in enumerate(students):
        (submitted / student).mkdir(parents=True)
        answer = "def double(x):\n    return 2 * x" if i % 2 == 0 else "def double(x):\n    return x"
        nbformat.write(_lesson(answer), submitted / student / "99_test.ipynb")
    csv_path = tmp_path / "grades" / "grades.csv"
    command = [sys.executable, "-m", "course_lib.coursework", "grade", str(submitted), "--csv", str(csv_path),
               "--instructor", str(_instructor(tmp_path)), "--timeout", "60"]
    if sandbox.unavailable():
        command.append("--no-sandbox")
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT))
    with open(tmp_path / "first.log", "wb") as log:
        grader = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and grader.poll() is None:
            tree |= set(sandbox.descendants(grader.pid))
            if csv_path.is_file() and len(_rows(csv_path)) >= 1:
                break
            time.sleep(0.05)
        assert grader.poll() is None, (tmp_path / "first.log").read_text()
        os.kill(grader.pid, signal.SIGKILL)  # the grader only: no handler, no clean-up runs
        grader.wait()
    finally:
        for pid in tree | set(sandbox.descendants(grader.pid)):
            try:
                os.kill(pid, signal.SIGKILL)  # what the killed grader left running
            except ProcessLookupError:
                pass
    before = csv_path.read_bytes()
    finished = _rows(csv_path)
    assert before.endswith(b"\n") and 1 <= len(finished) < len(students), before
    # rows of the grader's own failures are graded again on resume; every other row stays as it is
    kept = [line for line, row in zip(before.splitlines()[1:], finished) if row["status"] not in REGRADE]
    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    if kept:
        assert f"{len(kept)} submission(s) already in it are not graded again" in done.stdout
    assert csv_path.read_bytes().splitlines()[1:len(kept) + 1] == kept  # the finished rows, byte for byte
    rows = _rows(csv_path)
    assert sorted(r["student"] for r in rows) == students  # each once
    scores = {r["student"]: (r["score"], r["max_score"]) for r in rows}
    assert scores == {s: ("1" if i % 2 == 0 else "0", "1") for i, s in enumerate(students)}, rows
    # "library changed": the tripwire saw course_lib edited while this ran (a shared working tree)
    assert {r["status"] for r in rows} <= {"ok", "library changed"}, rows
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert again.returncode == 2 and "pass --resume" in again.stderr  # never overwritten
