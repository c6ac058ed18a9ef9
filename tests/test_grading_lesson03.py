"""End to end on a real lesson, through the command line, sandboxed where bubblewrap runs:
lesson 03's instructor source (its worked solutions) scores full marks, its student edition 0,
and the one-line exception swallower 0; one line per submission plus a summary on stdout, a
CSV, a feedback notebook each, the source lesson unchanged."""

import csv
import hashlib
import subprocess
import sys

import nbformat
import pytest

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib.coursework import material, sandbox, versions  # noqa: E402

LESSON = "03_classifier_free_guidance"


def test_lesson_03_honest_full_marks_stub_and_swallower_zero(tmp_path):
    source = material.lessons_folder() / f"{LESSON}.ipynb"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    student = versions.student_version(nbformat.read(source, as_version=4))
    submitted = tmp_path / "submitted"
    for name in ("honest", "stub", "swallower"):
        (submitted / name / LESSON).mkdir(parents=True)  # nbgrader's <student>/<assignment>/<lesson>.ipynb
    (submitted / "honest" / LESSON / f"{LESSON}.ipynb").write_bytes(source.read_bytes())
    nbformat.write(student, submitted / "stub" / LESSON / f"{LESSON}.ipynb")
    student.cells.insert(1, nbformat.v4.new_code_cell(
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"))
    nbformat.write(student, submitted / "swallower" / LESSON / "homework.ipynb")  # recognised by its grade ids
    flags = [] if sandbox.unavailable() is None else ["--no-sandbox"]
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "grade", str(submitted),
                           "--csv", str(tmp_path / "grades.csv"), "--jobs", "2", "--timeout", "300", *flags],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("graded 3 submission(s)") for line in lines), done.stdout
    rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    full = sum(g.points for g in material.load().for_lesson(LESSON))
    assert {s: (r["lesson"], float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        "honest": (LESSON, full, full), "stub": (LESSON, 0, full), "swallower": (LESSON, 0, full)}, done.stdout
    # "library changed": someone edited course_lib while this ran (the tripwire doing its job, a shared checkout)
    assert rows["honest"]["status"] in ("ok", "library changed"), rows["honest"]
    assert ("not sandboxed" in rows["honest"]["note"]) == bool(flags), rows["honest"]
    for name in rows:
        assert (tmp_path / "feedback" / name / f"{LESSON}.ipynb").is_file()
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
