"""The gradebook loses nothing (issue 15, item 2): each row is on disk when its submission is
graded, a crash or Ctrl-C keeps every finished row, a batch resumes without regrading, every
cell is safe in a spreadsheet, and every odd name, link, copy, file and output path gets a row
or a one-line refusal. Fast: a fake grade function stands in for the kernel (the batch is what
is tested here; tests/test_gradebook_cli.py runs the real grader and kills it)."""

import csv
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

pytest.importorskip("nbgrader")

from course_lib.coursework import __main__ as cli  # noqa: E402
from course_lib.coursework import batch, grading  # noqa: E402
from course_lib.coursework.gradebook import Gradebook, merge, output_problem, safe_cell  # noqa: E402
from course_lib.coursework.grading import ExerciseResult, Result  # noqa: E402

LESSON = "03_classifier_free_guidance"
ORDER = ["cfg_eps", "other"]


def _notebook(path: Path, metadata=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def cfg_eps(c, u, w):\n    return c", metadata=metadata or {})]
    nbformat.write(nb, path)
    return path


def fake(points=1.0, names=("cfg_eps",), calls=None):
    """A grade function: every exercise of ``names`` scores ``points``; records what it graded."""
    def grade(path, student):
        if calls is not None:
            calls.append((path, student))
        return Result(student, LESSON, str(path), "ok", {n: ExerciseResult(points, 1.0, "") for n in names})
    return grade


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"))))


@pytest.fixture
def klass(tmp_path):
    """Five students, one notebook each."""
    for name in ("ann", "ben", "cat", "dan", "eve"):
        _notebook(tmp_path / "submitted" / name / f"{LESSON}.ipynb")
    return tmp_path / "submitted"


def test_each_row_is_on_disk_and_synced_before_the_next_submission_starts(klass, tmp_path, monkeypatch):
    synced, seen = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    book = Gradebook(tmp_path / "grades.csv", ["cfg_eps"], order=ORDER)

    def grade(path, student):
        seen.append(len(_rows(tmp_path / "grades.csv")))  # rows already on disk when this one starts
        return fake()(path, student)

    batch.grade_all(batch.scan([klass]), grade=grade, gradebook=book)
    book.close()
    assert seen == [0, 1, 2, 3, 4] and len(_rows(tmp_path / "grades.csv")) == 5
    assert len(synced) >= 6  # the header and every row


def test_a_crash_keeps_every_finished_row_and_resume_grades_only_the_rest(klass, tmp_path):
    def crashing(path, student):
        if student == "cat":
            raise SystemExit("the grader crashed")  # not an Exception: nothing in the batch catches it
        return fake()(path, student)

    book = Gradebook(tmp_path / "grades.csv", ["cfg_eps"], order=ORDER)
    with pytest.raises(SystemExit):
        batch.grade_all(batch.scan([klass]), grade=crashing, gradebook=book)
    book.close()
    before = (tmp_path / "grades.csv").read_bytes()
    assert [r["student"] for r in _rows(tmp_path / "grades.csv")] == ["ann", "ben"]
    calls = []
    with Gradebook(tmp_path / "grades.csv", order=ORDER, resume=True) as book:
        batch.grade_all(batch.scan([klass]), grade=fake(calls=calls), gradebook=book)
    assert [s for _, s in calls] == ["cat", "dan", "eve"]
    after = (tmp_path / "grades.csv").read_bytes()
    assert after.startswith(before)  # finished rows untouched
    assert sorted(r["student"] for r in _rows(tmp_path / "grades.csv")) == ["ann", "ben", "cat", "dan", "eve"]


def test_ctrl_c_keeps_the_rows_of_running_submissions_and_drops_the_rest(klass, tmp_path):
    started = threading.Event()

    def grade(path, student):
        if student == "ann":
            started.set()
            time.sleep(0.5)
        if student == "ben":
            started.wait(5)
            raise KeyboardInterrupt
        return fake()(path, student)

    book = Gradebook(tmp_path / "grades.csv", ["cfg_eps"], order=ORDER)
    with pytest.raises(KeyboardInterrupt):
        batch.grade_all(batch.scan([klass]), grade=grade, gradebook=book, jobs=2)
    book.close()
    students = [r["student"] for r in _rows(tmp_path / "grades.csv")]
    assert "ann" in students and "ben" not in students and len(students) <= 2


def test_resume_removes_an_unfinished_last_row_and_grades_that_submission_again(klass, tmp_path):
    path = tmp_path / "grades.csv"
    with Gradebook(path, ["cfg_eps"], order=ORDER) as book:
        batch.grade_all(batch.scan([klass])[:2], grade=fake(), gradebook=book)
    with open(path, "ab") as f:
        f.write(b"cat,03_classifier_free_guidance,1,1,o")  # killed in the middle of a write
    calls = []
    with Gradebook(path, order=ORDER, resume=True) as book:
        assert book.dropped.startswith("cat,")
        batch.grade_all(batch.scan([klass]), grade=fake(calls=calls), gradebook=book)
    assert [s for _, s in calls] == ["cat", "dan", "eve"]
    assert [r["status"] for r in _rows(path)] == ["ok"] * 5


def test_resume_grades_again_the_rows_of_the_graders_own_failures(klass, tmp_path):
    path = tmp_path / "grades.csv"

    def flaky(path, student):
        if student == "ben":
            raise RuntimeError("disk hiccup")
        return fake()(path, student)

    with Gradebook(path, ["cfg_eps"], order=ORDER) as book:
        batch.grade_all(batch.scan([klass]), grade=flaky, gradebook=book)
    assert {r["student"]: r["status"] for r in _rows(path)}["ben"] == "grader error"
    calls = []
    with Gradebook(path, order=ORDER, resume=True) as book:
        assert book.regraded == 1
        batch.grade_all(batch.scan([klass]), grade=fake(calls=calls), gradebook=book)
    assert [s for _, s in calls] == ["ben"]
    assert sorted((r["student"], r["status"]) for r in _rows(path)) == [(s, "ok") for s in
                                                                         ("ann", "ben", "cat", "dan", "eve")]


def test_a_new_gradebook_never_replaces_a_file_and_resume_wants_a_gradebook(tmp_path):
    (tmp_path / "grades.csv").write_text("student,lesson,score,max_score,status,file,note\n")
    with pytest.raises(FileExistsError):
        Gradebook(tmp_path / "grades.csv", ["cfg_eps"])
    (tmp_path / "other.csv").write_text("name,marks\nann,3\n")
    with pytest.raises(ValueError, match="not a gradebook"):
        Gradebook(tmp_path / "other.csv", resume=True)
    with Gradebook(tmp_path / "empty.csv", resume=True) as book:  # resuming a batch that never began
        assert book.columns == [] and not book.rows
        with pytest.raises(ValueError, match="another grader"):  # one grader per gradebook
            Gradebook(tmp_path / "empty.csv", resume=True)


def test_a_lesson_first_met_on_resume_widens_the_header_and_keeps_every_row(klass, tmp_path):
    path = tmp_path / "grades.csv"
    with Gradebook(path, ["cfg_eps"], order=ORDER) as book:
        batch.grade_all(batch.scan([klass])[:2], grade=fake(), gradebook=book)
    with Gradebook(path, order=ORDER, resume=True) as book:
        batch.grade_all(batch.scan([klass]), grade=fake(names=("other", "cfg_eps")), gradebook=book)
    lines = path.read_text().splitlines()
    assert lines[0] == "student,lesson,score,max_score,status,cfg_eps,other,file,note"
    rows = _rows(path)
    assert [(r["student"], r["other"]) for r in rows] == [("ann", ""), ("ben", ""), ("cat", "1"), ("dan", "1"),
                                                            ("eve", "1")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_cells_are_safe_in_a_spreadsheet_and_numbers_stay_numbers(tmp_path):
    for bad in ("=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"):
        assert safe_cell(bad) == "'" + bad, bad
    assert safe_cell("\t=1") == "\\t=1" and safe_cell("\r=1") == "\\r=1"  # written as text: backslash, t
    assert safe_cell("-1", number=True) == "-1" and safe_cell("-1") == "'-1"
    assert safe_cell("alice") == "alice" and safe_cell("'=x") == "'=x"
    students = ["=HYPERLINK(\"evil.example\",\"click\")", "+cmd", "@x", "-x"]
    for name in students:
        _notebook(tmp_path / "submitted" / name / f"{LESSON}.ipynb")
    with Gradebook(tmp_path / "grades.csv", ["cfg_eps"], order=ORDER) as book:
        batch.grade_all(batch.scan([tmp_path / "submitted"]), grade=fake(0.5), gradebook=book)
    rows = _rows(tmp_path / "grades.csv")
    assert sorted(r["student"] for r in rows) == sorted("'" + s for s in students)
    assert {(r["score"], r["max_score"], r["cfg_eps"]) for r in rows} == {("0.5", "1", "0.5")}
    assert not [c for r in rows for c in r.values() if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_merge_keeps_working_and_makes_foreign_cells_safe(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("student,lesson,score,max_score,status,cfg_eps,file,note\n=1+1,03_x,1,1,ok,1,z.ipynb,@note\n")
    b.write_text("student,lesson,score,max_score,status,forward_noise,file,note\nadam,00_y,0,1,timeout,-1,a.ipynb,\n")
    assert merge([a, b], tmp_path / "all.csv") == 2
    assert (tmp_path / "all.csv").read_text().splitlines() == [
        "student,lesson,score,max_score,status,cfg_eps,forward_noise,file,note",
        "'=1+1,03_x,1,1,ok,1,,z.ipynb,'@note", "adam,00_y,0,1,timeout,,-1,a.ipynb,"]
    (tmp_path / "junk.csv").write_text("name,marks\n")
    with pytest.raises(ValueError, match="junk.csv is not a gradebook"):
        merge([a, tmp_path / "junk.csv"], tmp_path / "all.csv")
    with pytest.raises(ValueError, match="--csv .* is a folder"):
        merge([a], tmp_path)


def test_names_that_are_not_utf8_or_hold_control_characters_get_readable_rows(tmp_path):
    root = tmp_path / "submitted"
    root.mkdir()
    weird = os.path.join(os.fsencode(root), b"st\xffudent")
    os.mkdir(weird)
    _notebook(Path(os.fsdecode(weird)) / f"{LESSON}.ipynb")
    _notebook(root / "new\nline\x1b[31m" / f"{LESSON}.ipynb")
    calls = []
    with Gradebook(tmp_path / "grades.csv", ["cfg_eps"], order=ORDER) as book:
        results = batch.grade_all(batch.scan([root]), grade=fake(calls=calls), gradebook=book)
    assert all(p.is_file() for p, _ in calls)  # the grader got paths that open
    text = (tmp_path / "grades.csv").read_bytes().decode("utf-8")  # valid UTF-8
    assert "st\\xffudent" in text and "new\\nline\\x1b[31m" in text
    assert len(text.splitlines()) == 3 and {r.status for r in results} == {"ok"}


def test_links_out_of_a_students_folder_are_refused_with_a_row(tmp_path):
    root, outside = tmp_path / "submitted", tmp_path / "elsewhere"
    _notebook(outside / f"{LESSON}.ipynb")
    _notebook(root / "ann" / f"{LESSON}.ipynb")
    (root / "ben").mkdir()
    (root / "ben" / f"{LESSON}.ipynb").symlink_to(outside / f"{LESSON}.ipynb")
    (root / "cat").symlink_to(outside)
    (root / "dan").symlink_to(root / "ann")  # another student's folder
    (root / "eve").mkdir()
    (root / "eve" / f"{LESSON}.ipynb").symlink_to(root / "ann" / f"{LESSON}.ipynb")
    _notebook(root / "fay" / "work" / "mine.ipynb")
    (root / "fay" / f"{LESSON}.ipynb").symlink_to(root / "fay" / "work" / "mine.ipynb")  # inside her own folder
    calls = []
    results = {r.student: r for r in batch.grade_all(batch.scan([root]), grade=fake(calls=calls))}
    for student in ("ben", "cat", "dan", "eve"):
        assert results[student].status == "refused" and "symbolic link" in results[student].note, student
    assert "outside ben's folder" in results["ben"].note and "outside the submissions folder" in results["cat"].note
    assert "another folder of the submissions folder" in results["dan"].note
    assert sorted(s for _, s in calls) == ["ann", "fay"]  # the link inside fay's own folder: graded once
    fay = {Path(r.file).name: r for r in batch.grade_all(batch.scan([root / "fay"]), grade=fake())}
    assert fay["mine.ipynb"].status == "ok" and fay[f"{LESSON}.ipynb"].status == "refused"
    assert "the same file as" in fay[f"{LESSON}.ipynb"].note


def test_several_copies_of_a_lesson_are_each_graded_with_a_note(tmp_path):
    root = tmp_path / "submitted"
    _notebook(root / "ann" / f"{LESSON}.ipynb")
    _notebook(root / "ann" / "ps3" / f"{LESSON}.ipynb")
    _notebook(root / "ann" / "03_copy.ipynb")
    _notebook(root / "ben" / "homework.ipynb")  # recognised by its cells only
    _notebook(root / "ben" / f"{LESSON}.ipynb")
    results = batch.grade_all(batch.scan([root]), grade=fake())
    notes = {(r.student, Path(r.file).relative_to(root).as_posix()): r.note for r in results}
    assert [n for (s, _), n in notes.items() if s == "ann"] == ["duplicate: 3 copies of " + LESSON] * 3
    assert "duplicate" in notes["ben", "ben/homework.ipynb"] + notes["ben", f"ben/{LESSON}.ipynb"]


def test_files_folders_and_special_files_that_are_not_notebooks_get_rows(tmp_path):
    root = tmp_path / "submitted"
    _notebook(root / "ann" / f"{LESSON}.ipynb")
    (root / "ann" / "notes.txt").write_text("hello")
    _notebook(root / "ann" / "ps3" / "deeper" / f"{LESSON}.ipynb")
    (root / "ann" / "ps3" / "timestamp.txt").write_text("2026-12-07")  # nbgrader's own: no row
    _notebook(root / "ann" / ".ipynb_checkpoints" / f"{LESSON}-checkpoint.ipynb")  # editor's: no row
    _notebook(root / "ann" / f".{LESSON}.ipynb")
    os.mkfifo(root / "ann" / "00_fifo.ipynb")
    (root / "ben").mkdir()
    (root / "README.txt").write_text("class of 2026")
    calls = []
    rows = batch.grade_all(batch.scan([root]), grade=fake(calls=calls))  # a FIFO would hang a read
    got = sorted((r.student, Path(r.file).name, r.status) for r in rows)
    assert got == [("", "README.txt", "not a notebook"), ("ann", f".{LESSON}.ipynb", "not a notebook"),
                   ("ann", "00_fifo.ipynb", "refused"), ("ann", f"{LESSON}.ipynb", "ok"),
                   ("ann", "deeper", "not a notebook"), ("ann", "notes.txt", "not a notebook"),
                   ("ben", "ben", "no notebook")]
    assert len(calls) == 1


def test_every_step_of_a_submission_is_inside_its_guard(tmp_path):
    """Malformed cell metadata makes recognising the lesson raise: that submission gets its row
    (whatever the grader makes of it) and the others are graded."""
    root = tmp_path / "submitted"
    _notebook(root / "ann" / f"{LESSON}.ipynb")
    _notebook(root / "ben" / "homework.ipynb", metadata={"nbgrader": "not a dict"})
    _notebook(root / "cat" / "homework.ipynb", metadata={"nbgrader": {"solution": True, "grade_id": ["a", "b"]}})
    _notebook(root / "dan" / f"{LESSON}.ipynb")
    _notebook(root / "eve" / "boom.ipynb")
    graded = {"cfg_eps": SimpleNamespace(name="cfg_eps", lesson=LESSON)}

    def grade(path, student):
        nb = nbformat.read(path, as_version=4)
        if grading.identify_lesson(path, nb, graded) is None and path.name == "boom.ipynb":
            raise RuntimeError("the grader tripped on this one")
        return fake()(path, student)

    rows = {r.student: r for r in batch.grade_all(batch.scan([root]), grade=grade)}
    assert sorted(rows) == ["ann", "ben", "cat", "dan", "eve"]
    assert rows["ann"].status == rows["dan"].status == "ok"
    for student in ("ben", "cat"):
        assert rows[student].status in ("ok", "grader error", "unknown lesson", "unreadable"), rows[student]
    assert rows["eve"].status == "grader error" and rows["eve"].note == "RuntimeError: the grader tripped on this one"


def test_a_prefix_of_a_lesson_without_graded_exercises_says_so(tmp_path):
    _notebook(tmp_path / "ann" / "07_extra.ipynb")
    _notebook(tmp_path / "ann" / "homework.ipynb")

    def grade(path, student):
        return Result(student, "", str(path), "unknown lesson", note="no NN_ prefix or exercise grade_id")

    rows = {Path(r.file).name: r for r in batch.grade_all(batch.scan([tmp_path / "ann"]), grade=grade)}
    assert rows["07_extra.ipynb"].note == "no graded exercises for lesson 07"
    assert rows["homework.ipynb"].note == "no NN_ prefix or exercise grade_id"


def test_the_real_grader_names_the_lesson_without_graded_exercises(tmp_path):
    """grading.grade_submission itself (no kernel runs for a lesson it cannot recognise)."""
    _notebook(tmp_path / "ann" / "07_extra.ipynb")
    graded = {"cfg_eps": SimpleNamespace(name="cfg_eps", lesson=LESSON)}
    (row,) = batch.grade_all(batch.scan([tmp_path / "ann"], [LESSON]), graded=graded, warm=False)
    assert (row.status, row.note) == ("unknown lesson", "no graded exercises for lesson 07")


def test_without_the_sandbox_every_graded_row_says_so(klass):
    rows = batch.grade_all(batch.scan([klass]), grade=fake(), sandboxed=False)
    assert all(r.note == "not sandboxed" for r in rows)


def test_a_notebook_swapped_for_a_link_after_the_scan_is_not_graded(klass, tmp_path):
    found = batch.scan([klass])
    target = klass / "ann" / f"{LESSON}.ipynb"
    target.unlink()
    target.symlink_to("/etc/hostname")
    rows = {r.student: r for r in batch.grade_all(found, grade=fake())}
    assert rows["ann"].status == "refused" and "replaced" in rows["ann"].note


@pytest.mark.parametrize("kind", ["folder", "fifo", "symlink", "device", "parent is a file"])
def test_an_output_path_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    path = {"folder": tmp_path, "fifo": tmp_path / "fifo", "symlink": tmp_path / "link.csv",
            "device": Path("/dev/null"), "parent is a file": tmp_path / "file" / "grades.csv"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "symlink":
        (tmp_path / "real.csv").write_text("")
        path.symlink_to(tmp_path / "real.csv")
    if kind == "parent is a file":
        (tmp_path / "file").write_text("")
    problem = output_problem(path)
    assert problem and problem.startswith(f"--csv {path}"), problem
    with pytest.raises(ValueError, match="--csv"):
        Gradebook(path, resume=True)
    assert output_problem(tmp_path / "new" / "grades.csv") is None


def test_cli_misuse_is_one_line_naming_the_argument(klass, tmp_path, capsys):
    """In-process (the interpreter's start-up is the slow part); one misuse through a real process
    shows that no traceback reaches the instructor."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "old.csv").write_text("student,lesson,score,max_score,status,file,note\n")
    cases = [(["grade", klass, "--csv", "/dev/null"], "--csv /dev/null"),
             (["grade", klass, "--csv", tmp_path], "is a folder"),
             (["grade", klass, "--csv", tmp_path / "fifo"], "not a regular file"),
             (["grade", klass, "--csv", klass / "grades.csv", "--no-sandbox"], "inside the submissions folder"),
             (["grade", klass, "--csv", tmp_path / "old.csv", "--no-sandbox"], "pass --resume"),
             (["grade", klass, "--feedback", klass / "feedback", "--no-sandbox"], "inside the submissions folder"),
             (["grade", klass, "--resume"], "--resume needs --csv"),
             (["grade", klass, "--jobs", "0"], "--jobs"),
             (["grade", tmp_path / "missing"], "no such notebook or folder"),
             (["grade", klass, "--instructor", tmp_path], "--instructor"),
             (["merge", tmp_path / "old.csv", "--csv", tmp_path], "--csv"),
             (["merge", klass / "ann" / f"{LESSON}.ipynb", "--csv", tmp_path / "m.csv"], "not a gradebook")]
    for args, expected in cases:
        with pytest.raises(SystemExit) as exit:
            cli.main(list(map(str, args)))
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit.value.code == 2 and expected in last, (args, last)
    done = subprocess.run([sys.executable, "-m", "course_lib.coursework", "grade", str(klass), "--csv", "/dev/null"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--csv /dev/null" in done.stderr and "Traceback" not in done.stderr
