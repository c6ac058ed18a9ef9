"""Grade a class: find the submissions, grade N at once, write the gradebook CSV.

A SUBMISSIONS argument is a notebook, or a folder laid out like nbgrader's ``submitted/``:
``<student>/<NN_lesson>.ipynb`` or ``<student>/<assignment>/<NN_lesson>.ipynb`` (a folder
holding notebooks directly is one student's). The student of a notebook given by itself is
its folder's name (the folder above when that one is named after the lesson, nbgrader's
assignment folder).
"""

from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import torch

from .. import exercises
from .grading import Limits, Result, grade_submission


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file())


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_submissions(paths: list[Path]) -> list[tuple[Path, str]]:
    """``(notebook, student)`` for every submission under ``paths``; ``ValueError`` for a path
    that does not exist or a folder that holds no notebook."""
    found = []
    for path in map(Path, paths):
        if path.is_file():
            parent = path.resolve().parent
            assignment = parent.name[:3] == path.name[:3] and parent.name[:2].isdigit()
            found.append((path, (parent.parent if assignment else parent).name))
        elif path.is_dir():
            mine = [(p, path.resolve().name) for p in _notebooks(path)]
            if not mine:
                for student in _subfolders(path):
                    mine += [(p, student.name) for p in _notebooks(student)]
                    mine += [(p, student.name) for sub in _subfolders(student) for p in _notebooks(sub)]
            if not mine:
                raise ValueError(f"no notebooks in {path} (expected <student>/<NN_lesson>.ipynb or "
                                 "<student>/<assignment>/<NN_lesson>.ipynb)")
            found += mine
        else:
            raise ValueError(f"no such notebook or folder: {path}")
    return found


def fingerprint(folders: list[Path]) -> dict[str, str]:
    """SHA-256 of every ``.py`` and ``.ipynb`` file under ``folders`` (a tripwire: the grader's
    library and lessons must not change while submissions run)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders
            for p in sorted(Path(folder).rglob("*")) if p.suffix in (".py", ".ipynb") and p.is_file()}


def grade_all(submissions: list[tuple[Path, str]], *, jobs: int = 1, limits: Limits = Limits(),
              feedback: Path | None = None, data_dir: Path | None = None, watch: list[Path] = (),
              report: Callable[[Result], None] = lambda r: None) -> list[Result]:
    """Grade every submission, ``jobs`` at once; ``report`` is called as each one finishes.
    A submission finished while a ``watch`` folder (the library, the lessons) differs from
    how it was at the start is marked ``library changed``: regrade it in a clean copy."""
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    before = fingerprint(list(watch))
    for exercise in exercises.REGISTRY.values():  # every case builder and reference runs (and imports) before
        for args in exercise.hidden_cases(torch.Generator().manual_seed(0)):  # any submission does
            if exercise.reference is not None:
                exercise.reference(*args)
    results = []
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(grade_submission, path, student, limits=limits, feedback=feedback,
                               data_dir=data_dir) for path, student in submissions]
        for future in as_completed(futures):
            result = future.result()
            changed = sorted(set(fingerprint(list(watch)).items()) ^ set(before.items()))
            if changed:
                result.status, result.note = "library changed", f"{changed[0][0]} changed during grading"
            report(result)
            results.append(result)
    finally:  # interrupted (Ctrl-C): submissions not started are dropped, running ones finish and clean up
        pool.shutdown(wait=True, cancel_futures=True)
    return sorted(results, key=lambda r: (r.student, r.lesson, r.file))


def write_csv(results: list[Result], path: Path) -> None:
    """The gradebook: student, lesson, score, max_score, status, one column per exercise, then file and note."""
    names = [name for name in exercises.REGISTRY if any(name in r.exercises for r in results)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["student", "lesson", "score", "max_score", "status", *names, "file", "note"])
        for r in results:
            cells = [f"{r.exercises[n].points:g}" if n in r.exercises else "" for n in names]
            scored = bool(r.exercises)
            writer.writerow([r.student, r.lesson, f"{r.score:g}" if scored else "0",
                             f"{r.max_score:g}" if scored else "", r.status, *cells, r.file, r.note])


def merge_csv(paths: list[Path], target: Path) -> int:
    """Merge gradebooks written on several machines into one (columns united, rows sorted by
    student and lesson); returns the number of rows."""
    rows, columns = [], {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns.update(dict.fromkeys(reader.fieldnames or []))
            rows += list(reader)
    rest = [c for c in columns if c not in ("file", "note")]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as out:
        writer = csv.DictWriter(out, [*rest, "file", "note"], restval="")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r.get("student", ""), r.get("lesson", ""))))
    return len(rows)


def summary(results: list[Result], seconds: float, jobs: int) -> str:
    """One line: how many, how fast, how they went."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    rate = len(results) / seconds * 60 if seconds > 0 else float("nan")
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return (f"graded {len(results)} submission(s) in {seconds:.0f} s with --jobs {jobs} "
            f"({rate:.2f} per minute): {statuses or 'none'}")
