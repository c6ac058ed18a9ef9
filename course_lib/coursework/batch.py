"""Grade a class: find the submissions, grade N at once, each row into the gradebook as it is done.

A SUBMISSIONS argument is a notebook, or a folder laid out like nbgrader's ``submitted/``:
``<student>/<NN_lesson>.ipynb`` or ``<student>/<assignment>/<NN_lesson>.ipynb`` (a folder
holding notebooks directly is one student's). The student of a notebook given by itself is
its folder's name (the folder above when that one is named after the lesson, nbgrader's
assignment folder).

Inside a folder every entry gets a row or is graded, never skipped in silence, except hidden
folders and files that are not notebooks (``.ipynb_checkpoints``, ``.DS_Store``) and nbgrader's
``timestamp.txt``:

- a file that is not ``.ipynb``, a folder below ``<student>/<assignment>/``, a hidden
  notebook: status ``not a notebook``; a student folder with nothing in it: ``no notebook``;
- a FIFO, socket or device, a notebook over :data:`NOTEBOOK_BYTES`, a symbolic link that
  points outside its student's folder (a student folder that is a link, too), a second path
  to a file already found (a link inside the folder, a hard link): status ``refused``, and
  the note says why;
- several notebooks of one lesson by one student (by the ``NN_`` prefix): each graded, each
  row's note ``duplicate: N copies of <lesson>``; a copy recognised only by its cells gets the
  note when its row comes after another of the same lesson;
- names that are not valid UTF-8 are graded; the CSV and the printed lines show those bytes
  as ``\\xNN`` (:func:`~.gradebook.printable`).

Everything done for one submission (re-checking the file, reading it, recognising its
lesson, running and scoring it) happens inside that submission's guard: whatever goes wrong
becomes its row (``grader error`` and the exception) and the batch goes on. Each row is in
the gradebook (:mod:`.gradebook`, written and ``fsync``-ed) before the next line is printed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .. import exercises
from .gradebook import Gradebook, printable, safe_cell, write_csv
from .gradebook import merge as merge_csv
from .grading import Result

__all__ = ["Submission", "find_submissions", "grade_all", "merge_csv", "scan", "summary", "write_csv"]

NOTEBOOK_BYTES = 100 << 20
IGNORED = {"timestamp.txt"}  # nbgrader writes one into each submitted assignment folder


@dataclass
class Submission:
    """One entry found by :func:`scan`: graded when ``status`` is empty, else a row as it is."""

    path: Path
    student: str  # printable (the CSV's student column)
    lesson: str = ""  # by the NN_ prefix; "" when the prefix names no graded lesson
    status: str = ""
    note: str = ""
    identity: tuple[int, int] | None = None  # (device, inode) when found

    @property
    def file(self) -> str:
        return printable(os.path.abspath(self.path))


def prefix_lesson(name: str, known: Iterable[str] | None = None) -> str:
    """The graded lesson (of ``known``, default every lesson of :mod:`course_lib.exercises`) named
    by the ``NN_`` prefix of a file name, or ``""``."""
    match = re.match(r"(\d\d)_", name)
    known = exercises.lessons() if known is None else known
    found = [lesson for lesson in known if match and lesson.startswith(match.group(0))]
    return found[0] if len(found) == 1 else ""


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _visible(folder: Path, skip: Iterable[str] = ()) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.name not in skip and not (p.name.startswith(".") and not p.name.endswith(".ipynb")))


def _entry(child: Path, student: str, scope: str, depth: int, known: list[str]) -> list[Submission]:
    """What one entry of a student's folder (``depth`` 0) or assignment folder (1) gives."""
    lesson, note = prefix_lesson(child.name, known), ""
    if child.is_symlink():
        target = os.path.realpath(child)
        if not _inside(target, scope):
            return [Submission(child, student, lesson, "refused",
                               f"symbolic link to {printable(target)}, outside {student}'s folder: not followed")]
        note = f"symbolic link to {printable(os.path.relpath(target, scope))}"
    try:
        info = os.stat(child)
    except OSError as err:
        return [Submission(child, student, lesson, "refused", f"cannot be read: {err.strerror}")]
    if stat.S_ISDIR(info.st_mode):
        if depth == 0:
            return _student(child, student, scope, known, 1)
        return [Submission(child, student, "", "not a notebook", "a folder below <student>/<assignment>/: not looked into")]
    if not stat.S_ISREG(info.st_mode):
        return [Submission(child, student, lesson, "refused", "not a regular file (a FIFO, a socket or a device)")]
    if not child.name.endswith(".ipynb"):
        return [Submission(child, student, lesson, "not a notebook", "not an .ipynb file")]
    if child.name.startswith("."):
        return [Submission(child, student, lesson, "not a notebook", "a hidden file (its name starts with '.')")]
    if info.st_size > NOTEBOOK_BYTES:
        return [Submission(child, student, lesson, "refused",
                           f"the file takes {info.st_size} bytes (more than {NOTEBOOK_BYTES}): not graded")]
    return [Submission(child, student, lesson, "", note, (info.st_dev, info.st_ino))]


def _student(folder: Path, student: str, scope: str, known: list[str], depth: int = 0) -> list[Submission]:
    """Every entry of one student's folder (and of its assignment folders)."""
    try:
        children = _visible(folder, IGNORED)
    except OSError as err:
        return [Submission(folder, student, "", "refused", f"the folder cannot be listed: {err.strerror}")]
    found = [s for child in children for s in _entry(child, student, scope, depth, known)]
    if not children and depth == 0:
        found.append(Submission(folder, student, "", "no notebook", "the student's folder is empty"))
    return found


def _folder(root: Path, known: list[str]) -> list[Submission]:
    """A folder argument: one student's folder (it holds notebooks) or a folder of student folders."""
    real = os.path.realpath(root)
    children = _visible(root)
    if any(c.name.endswith(".ipynb") for c in children):
        return _student(root, printable(Path(real).name), real, known)
    found = []
    for child in children:
        student = printable(child.name)
        if child.is_symlink():
            target = os.path.realpath(child)
            where = "another folder of the submissions folder" if _inside(target, real) else "outside the submissions folder"
            found.append(Submission(child, student, "", "refused", f"symbolic link to {printable(target)}, {where}: "
                                                                   "not followed"))
        elif child.is_dir():
            found += _student(child, student, os.path.realpath(child), known)
        elif child.is_file():
            found.append(Submission(child, "", prefix_lesson(child.name, known), "not a notebook",
                                    "a file beside the student folders, not in one"))
        else:
            found.append(Submission(child, "", "", "refused", "not a regular file (a FIFO, a socket or a device)"))
    return found


def _file(path: Path, info: os.stat_result, known: list[str]) -> Submission:
    """A notebook named by itself: its student is its folder (or the one above an assignment folder)."""
    parent = Path(os.path.realpath(path.parent))
    assignment = parent.name[:3] == path.name[:3] and parent.name[:2].isdigit()
    student = printable((parent.parent if assignment else parent).name)
    lesson = prefix_lesson(path.name, known)
    if info.st_size > NOTEBOOK_BYTES:
        return Submission(path, student, lesson, "refused",
                          f"the file takes {info.st_size} bytes (more than {NOTEBOOK_BYTES}): not graded")
    return Submission(path, student, lesson, identity=(info.st_dev, info.st_ino))


def scan(paths: Iterable[Path], lessons: Iterable[str] | None = None) -> list[Submission]:
    """Every entry under ``paths`` (module docstring); ``lessons``: the graded lessons (default
    those of :mod:`course_lib.exercises`). ``ValueError`` for a path that does not exist, is not
    a file or folder, or is a folder without any notebook."""
    known = exercises.lessons() if lessons is None else list(lessons)
    found: list[Submission] = []
    for path in map(Path, paths):
        try:
            info = os.stat(path)
        except OSError:
            raise ValueError(f"no such notebook or folder: {printable(str(path))}") from None
        if stat.S_ISREG(info.st_mode):
            found.append(_file(path, info, known))
        elif stat.S_ISDIR(info.st_mode):
            try:
                mine = _folder(path, known)
            except OSError as err:
                raise ValueError(f"{printable(str(path))} cannot be listed: {err.strerror}") from None
            if not any(s.path.name.endswith(".ipynb") for s in mine):
                raise ValueError(f"no notebooks in {printable(str(path))} (expected <student>/<NN_lesson>.ipynb or "
                                 "<student>/<assignment>/<NN_lesson>.ipynb)")
            found += mine
        else:
            raise ValueError(f"{printable(str(path))} is not a notebook or a folder (a FIFO, a socket or a device)")
    first: dict[tuple[int, int], Submission] = {}
    copies: dict[tuple[str, str], int] = {}
    for sub in sorted(found, key=lambda s: s.note.startswith("symbolic link")):  # a file before a link to it
        if sub.status:
            continue
        if sub.identity in first:
            sub.status, sub.note = "refused", f"the same file as {first[sub.identity].file}: graded once"
            continue
        first[sub.identity] = sub
        if sub.lesson:
            copies[sub.student, sub.lesson] = copies.get((sub.student, sub.lesson), 0) + 1
    for sub in found:
        n = copies.get((sub.student, sub.lesson), 1) if not sub.status else 1
        if n > 1:
            sub.note = "; ".join(filter(None, [f"duplicate: {n} copies of {sub.lesson}", sub.note]))
    return found


def find_submissions(paths: list[Path]) -> list[tuple[Path, str]]:
    """``(notebook, student)`` for every submission under ``paths`` that is graded (:func:`scan`)."""
    return [(s.path, s.student) for s in scan(paths) if not s.status]


def fingerprint(folders: list[Path]) -> dict[str, str]:
    """SHA-256 of every ``.py`` and ``.ipynb`` file under ``folders`` (a tripwire: the grader's
    library and material must not change while submissions run); never raises."""
    found = {}
    for folder in folders:
        try:
            paths = sorted(Path(folder).rglob("*"))
        except OSError as err:
            found[str(folder)] = f"unreadable: {err}"
            continue
        for p in paths:
            try:
                if p.suffix in (".py", ".ipynb") and p.is_file():
                    found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError as err:
                found[str(p)] = f"unreadable: {err}"
    return found


def _submission(path: Path, student: str, known: list[str] | None) -> Submission:
    try:
        info = os.stat(path)
        identity = (info.st_dev, info.st_ino)
    except OSError:
        identity = None
    return Submission(Path(path), printable(student), prefix_lesson(Path(path).name, known), identity=identity)


def _outcome(sub: Submission, grade: Callable[[Path, str], Result], sandboxed: bool) -> Result:
    """The submission's row: ``grade``'s result, or why it was not graded; never raises."""
    if sub.status:
        return Result(sub.student, sub.lesson, sub.file, sub.status, note=sub.note)
    start = time.monotonic()
    try:
        info = os.stat(sub.path)
        if sub.identity is not None and (info.st_dev, info.st_ino) != sub.identity or not stat.S_ISREG(info.st_mode):
            result = Result(sub.student, sub.lesson, sub.file, "refused",
                            note="the file was replaced after the batch started: not graded")
        else:
            result = grade(sub.path, sub.student)
            if not isinstance(result, Result):
                raise TypeError(f"the grade function returned {type(result).__name__}, not a Result")
    except Exception as err:  # noqa: BLE001 -- this submission's guard: its row says what went wrong
        result = Result(sub.student, sub.lesson, sub.file, "grader error", note=f"{type(err).__name__}: {err}"[:240])
    result.student, result.file, result.lesson = sub.student, sub.file, result.lesson or sub.lesson
    prefix = re.match(r"(\d\d)_", sub.path.name)
    if result.status == "unknown lesson" and prefix and not sub.lesson:
        result.note = f"no graded exercises for lesson {prefix.group(1)}"
    sandbox_note = "" if sandboxed or "not sandboxed" in result.note else "not sandboxed"
    result.note = printable("; ".join(filter(None, [sub.note, result.note, sandbox_note])))  # one line, no escapes
    result.status = printable(result.status)
    result.seconds = result.seconds or time.monotonic() - start
    return result


def grade_all(submissions: list, *, jobs: int = 1, watch: list[Path] = (), report: Callable[[Result], None] = None,
              gradebook: Gradebook | None = None, grade: Callable[[Path, str], Result] | None = None,
              sandboxed: bool = True, warm: bool = True, **options) -> list[Result]:
    """Grade every submission (:class:`Submission` or ``(path, student)``), ``jobs`` at once, and
    return their rows sorted by student, lesson and file. ``grade(path, student)`` grades one
    (default :func:`~.grading.grade_submission` with ``sandboxed`` and ``options``, ``graded=``
    the instructor material, warmed up first unless ``warm=False``). Each row goes to ``gradebook``
    (when given; a submission it holds already is skipped) and then to ``report`` as it finishes.
    A submission finished while a ``watch`` folder (the library, the instructor material)
    differs from how it was at the start is marked ``library changed``: regrade it in a clean
    copy. Ctrl-C: submissions not started are dropped, running ones finish and get their rows."""
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if grade is None:
        from .grading import grade_submission, warm_up
        if warm and options.get("graded") is not None:
            warm_up(options["graded"])  # every reference and case generator imports before any submission runs
        grade = functools.partial(grade_submission, sandboxed=sandboxed, **options)
    known = sorted({g.lesson for g in options["graded"].values()}) if options.get("graded") else None
    subs = [s if isinstance(s, Submission) else _submission(*s, known) for s in submissions]
    todo = [s for s in subs if gradebook is None or not gradebook.has(s.student, s.file)]
    before = fingerprint(list(watch))
    lock, results, stop, abandon = threading.Lock(), [], threading.Event(), threading.Event()
    lessons_seen = {(r.get("student"), r.get("lesson")) for r in gradebook.rows} if gradebook else set()

    def one(sub: Submission) -> None:
        if stop.is_set():  # the batch is ending (Ctrl-C, a crash): this one is not started
            return
        try:
            result = _outcome(sub, grade, sandboxed)
        except BaseException:
            stop.set()
            raise
        if abandon.is_set():  # a second Ctrl-C: its processes were killed under it, so its row would lie
            return
        with lock:
            changed = sorted(set(fingerprint(list(watch)).items()) ^ set(before.items())) if watch and not sub.status else []
            if changed:
                result.status, result.note = "library changed", f"{printable(changed[0][0])} changed during grading"
            key = (safe_cell(result.student), safe_cell(result.lesson))
            if not sub.status and result.lesson and key in lessons_seen and "duplicate" not in result.note:
                result.note = "; ".join(filter(None, ["duplicate: another row grades this lesson too", result.note]))
            lessons_seen.add(key)
            if gradebook is not None:
                gradebook.add(result)
            results.append(result)
            try:
                if report is not None:
                    report(result)
            except Exception:  # noqa: BLE001 -- a closed stdout must not stop the batch; the row is written
                pass

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in as_completed([pool.submit(one, s) for s in todo]):
            future.result()  # a gradebook that cannot be written stops the batch
    finally:  # Ctrl-C: submissions not started are dropped, running ones finish, write their rows, clean up
        stop.set()
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # Ctrl-C again: stop waiting; the running ones get no row (--resume grades them)
            abandon.set()
            raise
    return sorted(results, key=lambda r: (r.student, r.lesson, r.file))


def summary(results: list[Result], seconds: float, jobs: int, skipped: int = 0) -> str:
    """One line: how many, how fast, how they went."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    rate = len(results) / seconds * 60 if seconds > 0 else float("nan")
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    resumed = f"; {skipped} already in the gradebook, not graded again" if skipped else ""
    return (f"graded {len(results)} submission(s) in {seconds:.0f} s with --jobs {jobs} "
            f"({rate:.2f} per minute): {statuses or 'none'}{resumed}")
