"""Grade one submission: run it for the feedback copy, then score its functions apart.

1. The submitted notebook is copied alone into a fresh temporary folder and run top to
   bottom in its own kernel (:mod:`runner`) under the supervisor (:mod:`sandbox`): minimal
   environment, ``HOME`` in the temporary folder, limits on CPU time and memory, a timeout
   per cell and per submission, every process it started killed at the end.
2. Only then, in another fresh folder, the grader draws the hidden cases of the lesson's
   exercises (:mod:`course_lib.exercises`) from a seed taken from ``os.urandom``, and the
   harness (:mod:`harness`), also supervised, executes each solution cell *by itself* and
   calls the function on them. Its answers come back as files read with
   ``torch.load(weights_only=True)`` and are compared here with the references computed
   here. The score is that comparison: never the kernel's output, stdout, stderr or exit status.
3. The executed notebook, with each exercise's result and message inserted after its
   grade cell, is the feedback copy.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import torch

from .. import exercises
from .versions import solution_cells
from .runner import FAILED, KERNEL_DIED, OK, TIMED_OUT
from .sandbox import TIMEOUT_EXIT, minimal_env, run

RESULT_BYTES = 256 << 20
RUNNER, HARNESS = Path(__file__).with_name("runner.py"), Path(__file__).with_name("harness.py")


@dataclass(frozen=True)
class Limits:
    """Per-cell timeout (each notebook cell and each graded function), per-submission
    timeout (the whole notebook run), and memory per process in bytes."""

    cell_timeout: float = 300.0
    submission_timeout: float = 1800.0
    memory_bytes: int = 4 << 30

    def __post_init__(self) -> None:
        for name in ("cell_timeout", "submission_timeout", "memory_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


@dataclass
class ExerciseResult:
    """The points one exercise earned and why."""

    points: float
    max_points: float
    message: str


@dataclass
class Result:
    """One graded submission: a row of the gradebook."""

    student: str
    lesson: str
    file: str
    status: str
    exercises: dict[str, ExerciseResult] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""

    @property
    def score(self) -> float:
        return sum(e.points for e in self.exercises.values())

    @property
    def max_score(self) -> float:
        return sum(e.max_points for e in self.exercises.values())

    def line(self) -> str:
        """The grader's one line about this submission (never the student's output)."""
        score = f"{self.score:g}/{self.max_score:g}" if self.exercises else "-"
        note = f" ({self.note})" if self.note else ""
        return f"{self.student}  {self.lesson or '?'}  {score}  {self.status}{note}  [{self.seconds:.0f} s]"


def identify_lesson(path: Path, nb) -> str | None:
    """The lesson of a submission: by the ``NN_`` prefix of its file name, else by the grade
    ids of its solution cells; ``None`` if neither names a lesson with graded exercises."""
    known = exercises.lessons()
    prefix = re.match(r"(\d\d)_", path.name)
    by_prefix = [lesson for lesson in known if prefix and lesson.startswith(prefix.group(0))]
    if len(by_prefix) == 1:
        return by_prefix[0]
    ids = set(solution_cells(nb))
    counts = {lesson: len(ids & {e.name for e in exercises.for_lesson(lesson)}) for lesson in known}
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] > 0 else None


def solution_sources(nb, names: list[str]) -> dict[str, str]:
    """Each exercise's solution cell source: the cell with its ``grade_id``, else the last
    code cell that defines a function of that name (metadata lost by an editor)."""
    cells = solution_cells(nb)
    found = {name: cells[name].source for name in names if name in cells}
    for name in set(names) - set(found):
        defining = [c.source for c in nb.cells if c.cell_type == "code" and re.search(rf"^def {name}\(", c.source, re.M)]
        if defining:
            found[name] = defining[-1]
    return found


def _read(path: Path):
    """The file's bytes and notebook; ``ValueError`` when it is empty or not a notebook at all
    (a notebook that merely breaks the schema somewhere is graded, with a note)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError("the file is empty")
    nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    if not isinstance(nb.get("cells"), list):
        raise ValueError("no cells: not a notebook")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        return raw, nb, f"not a valid notebook ({str(err).splitlines()[0][:100]}), graded anyway"
    return raw, nb, ""


def grade_submission(path: Path, student: str, *, limits: Limits = Limits(), feedback: Path | None = None,
                     data_dir: Path | None = None) -> Result:
    """Grade one submitted notebook (module docstring); never raises for a bad submission."""
    start = time.monotonic()
    result = Result(student, "", str(path), "ok")
    try:
        raw, nb, result.note = _read(path)
    except Exception as err:  # noqa: BLE001 -- any unreadable file gets its row
        result.status, result.note = "unreadable", f"{type(err).__name__}: {str(err)[:200]}"
        result.seconds = time.monotonic() - start
        return result
    result.lesson = identify_lesson(path, nb) or ""
    if not result.lesson:
        result.status, result.note = "unknown lesson", "no NN_ prefix or exercise grade_id of a graded lesson"
        result.seconds = time.monotonic() - start
        return result
    graded = exercises.for_lesson(result.lesson)
    folder = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        env = minimal_env(folder, data_dir)
        executed, result.status = _run_notebook(folder, path.name, raw, env, limits)
        result.exercises = _grade_functions(graded, solution_sources(nb, [e.name for e in graded]), folder / "harness",
                                            env, limits)
        if result.status == "ok" and any("timed out" in e.message for e in result.exercises.values()):
            result.status = "timeout"
        if feedback is not None:
            _write_feedback(executed or nb, result, graded, feedback / student / f"{result.lesson}.ipynb")
    except Exception as err:  # noqa: BLE001 -- the grader's own failure: the row says so, the batch goes on
        result.exercises = {e.name: ExerciseResult(0.0, e.points, "not graded") for e in graded}
        result.status, result.note = "grader error", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return result


def _run_notebook(folder: Path, name: str, raw: bytes, env: dict[str, str], limits: Limits):
    """Run the submission in ``folder/work`` (which holds only it); returns (executed notebook or None, status)."""
    work, logs = folder / "work", folder / "run"
    work.mkdir()
    logs.mkdir()
    (work / name).write_bytes(raw)
    out = logs / "executed.ipynb"
    code = run([sys.executable, "-I", str(RUNNER), str(work / name), str(out),
                "--cell-timeout", str(int(limits.cell_timeout))], cwd=work, env=env,
               timeout=limits.submission_timeout, cpu_seconds=int(limits.submission_timeout) + 1,
               memory_bytes=limits.memory_bytes, log=logs / "log.txt")
    status = {OK: "ok", TIMED_OUT: "timeout", KERNEL_DIED: "kernel died", TIMEOUT_EXIT: "timeout",
              FAILED: "not run"}.get(code, "kernel died")
    try:
        return (nbformat.read(out, as_version=4) if out.is_file() else None), status
    except Exception:  # noqa: BLE001 -- a mangled copy: the feedback falls back to the submission
        return None, status


def _grade_functions(graded: list[exercises.Exercise], sources: dict[str, str], folder: Path,
                     env: dict[str, str], limits: Limits) -> dict[str, ExerciseResult]:
    """Hidden cases drawn here, answers computed in the supervised harness, compared here."""
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    results, jobs = {}, []
    for exercise in graded:
        if exercise.name not in sources:
            results[exercise.name] = ExerciseResult(0.0, exercise.points, f"no solution cell for {exercise.name} "
                                                    f"(grade_id {exercise.name!r}) in the submission")
            continue
        jobs.append({"name": exercise.name, "source": sources[exercise.name], "call": exercise.call,
                     "cases": exercise.hidden_cases(gen)})
    folder.mkdir()
    torch.save(jobs, folder / "job.pt")
    first = 0
    while first < len(jobs):
        code, timed_out = _run_harness(folder, first, len(jobs), env, limits)
        for i in range(first, len(jobs)):
            exercise = exercises.get(jobs[i]["name"])
            done = folder / f"result_{i}.pt"
            if done.is_file():
                results[exercise.name] = _score(exercise, jobs[i]["cases"], _load(done))
                first = i + 1
                continue
            if (folder / f"started_{i}").exists():
                why = (f"timed out after {limits.cell_timeout:g} s" if timed_out == i
                       else f"the process running it ended (exit status {code})")
                results[exercise.name] = ExerciseResult(0.0, exercise.points, f"{exercise.name} {why}")
                first = i + 1
            else:  # the harness never reached it: the grader's own failure, not the student's
                for job in jobs[i:]:
                    results[job["name"]] = ExerciseResult(0.0, exercises.get(job["name"]).points,
                                                          f"grader error: the harness stopped (exit status {code})")
                first = len(jobs)
            break
    return {e.name: results[e.name] for e in graded}


def _run_harness(folder: Path, first: int, count: int, env: dict[str, str], limits: Limits) -> tuple[int, int | None]:
    """Run the harness from exercise ``first``; stops it when one exercise runs past the cell
    timeout. Returns (exit status, index of the exercise that timed out or None)."""
    state = {"index": None, "since": time.monotonic(), "timed_out": None}

    def poll() -> bool:
        started = [i for i in range(first, count) if (folder / f"started_{i}").exists()]
        current = max(started, default=None)
        if current != state["index"]:
            state["index"], state["since"] = current, time.monotonic()
        waited = time.monotonic() - state["since"]
        if current is not None and not (folder / f"result_{current}.pt").exists() and waited > limits.cell_timeout:
            state["timed_out"] = current
            return True
        return current is None and waited > limits.cell_timeout + 120  # the harness never starts

    code = run([sys.executable, "-I", str(HARNESS), str(folder), str(first)], cwd=folder, env=env,
               timeout=(count - first) * (limits.cell_timeout + 5) + 120,
               cpu_seconds=int((count - first) * limits.cell_timeout) + 120,
               memory_bytes=limits.memory_bytes, log=folder.parent / "harness-log.txt", poll=poll)
    return code, state["timed_out"]


def _load(path: Path) -> dict[str, Any]:
    if path.stat().st_size > RESULT_BYTES:
        return {"error": f"the answers take {path.stat().st_size} bytes (more than {RESULT_BYTES})"}
    try:
        result = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001
        return {"error": f"the answers could not be read back ({type(err).__name__}): return tensors or numbers"}
    if not isinstance(result, dict) or not (isinstance(result.get("error"), str) or
                                            isinstance(result.get("outputs"), (list, tuple))):
        return {"error": "the answers could not be read back"}
    return result


def _score(exercise: exercises.Exercise, cases: list[tuple], result: dict[str, Any]) -> ExerciseResult:
    """Full points when every hidden case is within tolerance of the reference computed here."""
    if "error" in result:
        return ExerciseResult(0.0, exercise.points, f"{exercise.name}: {result['error']}")
    outputs = result["outputs"]
    if len(outputs) != len(cases):
        return ExerciseResult(0.0, exercise.points, f"{exercise.name}: {len(outputs)} answers for {len(cases)} cases")
    worst = 0.0
    for k, (output, args) in enumerate(zip(outputs, cases)):
        try:
            error = exercise.error(output, args)
        except AssertionError as err:
            return ExerciseResult(0.0, exercise.points, f"hidden case {k + 1} of {len(cases)}: {err}")
        if not error <= exercise.tolerance:
            return ExerciseResult(0.0, exercise.points,
                                  f"{exercise.name}: hidden case {k + 1} of {len(cases)} is off by {error:.3g} "
                                  f"(allowed {exercise.tolerance:g}). Hint: {exercise.hint}")
        worst = max(worst, error)
    return ExerciseResult(exercise.points, exercise.points,
                          f"{exercise.name}: all {len(cases)} hidden cases within {exercise.tolerance:g} "
                          f"(largest difference {worst:.1e})")


def _write_feedback(nb, result: Result, graded: list[exercises.Exercise], target: Path) -> None:
    """The executed notebook with the grader's verdict at the top and after each exercise."""
    nb = nbformat.from_dict(nb)
    meta = {"course_lib_grader": True}
    for exercise in reversed(graded):
        verdict = result.exercises[exercise.name]
        text = f"**Grader: {exercise.name} {verdict.points:g}/{verdict.max_points:g}.** {verdict.message}"
        at = _feedback_position(nb, exercise.name)
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(text, metadata=meta))
    summary = (f"**Grade: {result.score:g}/{result.max_score:g}** for {result.student}, {result.lesson} "
               f"(notebook run: {result.status}). Each exercise's function was run by itself on hidden cases "
               "in a separate process; the outputs below are this notebook's own run.")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(summary, metadata=meta))
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def _feedback_position(nb, name: str) -> int:
    """Just after the exercise's grade cell (the first grade cell after its solution cell), else after the end."""
    ids = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    solution = next((i for i, m in enumerate(ids) if m.get("grade_id") == name and m.get("solution")), None)
    if solution is None:
        return len(nb.cells)
    grade = next((i for i in range(solution + 1, len(ids)) if ids[i].get("grade")), solution)
    return grade + 1
