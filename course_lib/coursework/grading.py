"""Grade one submission: run it for the feedback copy, then score its functions apart.

1. The submitted notebook is copied alone into a fresh temporary folder and run top to
   bottom in its own kernel (:mod:`run_notebook`) under the supervisor, in the OS sandbox
   (:mod:`sandbox`: bubblewrap, that folder its only writable place): minimal environment,
   ``HOME`` in the temporary folder, limits on CPU time and memory, a timeout per cell and per
   submission, every process it started killed at the end.
2. Only then the grader draws the hidden cases of the lesson's exercises (the instructor
   material, :mod:`.material`, which no sandbox can see) from a seed taken from ``os.urandom``,
   and for each exercise one harness process (:mod:`run_exercise`), in its own fresh folder and
   sandbox, executes the solution cell *by itself* and calls the function on them, its twins
   tripped (issue 14). The job goes in on a pipe; the answers come back on another, framed by
   a random nonce, read here with bounded size and time and loaded with
   ``torch.load(weights_only=True)`` (a zip whose entries are compressed, or larger than
   allowed, is refused first), then compared here with the references computed here. The
   score is that comparison: never the kernel's output, stdout, stderr or exit status.
3. The executed notebook, with each exercise's result and message inserted after its
   grade cell, is the feedback copy.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat
import torch

from .guard import MAX_TWINS, TRIPWIRE_EXIT
from .run_notebook import FAILED, KERNEL_DIED, OK, TIMED_OUT
from .sandbox import TIMEOUT_EXIT, Captured, Jail, minimal_env, run

RESULT_BYTES = 64 << 20
NOTEBOOK_BYTES = 64 << 20
NONCE_BYTES = 16
MAGIC = b"COURSE-LIB-ANSWER\n"  # run_exercise.MAGIC (a script: it is not imported here)
HARNESS_START = 120.0  # seconds a harness may take to start (imports) before its exercise's timeout runs
NOT_SANDBOXED = "not sandboxed"
RUNNER, HARNESS = Path(__file__).with_name("run_notebook.py"), Path(__file__).with_name("run_exercise.py")


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


def _material(graded: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if graded is not None:
        return graded
    from . import material
    return material.load().GRADED


def warm_up(graded: Mapping[str, Any]) -> None:
    """Draw every exercise's hidden cases and run its reference once in the grader's process,
    so that everything they import is loaded before any submission runs."""
    for exercise in graded.values():
        for args in exercise.grading.hidden_cases(torch.Generator().manual_seed(0)):
            exercise.grading.reference(*args)


def _solution_ids(nb) -> dict[str, str]:
    """``grade_id -> source`` of the solution code cells; cells whose metadata is malformed are skipped."""
    found = {}
    for cell in nb.get("cells", []) if isinstance(nb.get("cells"), list) else []:
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        info = meta.get("nbgrader") if isinstance(meta, dict) else None
        if not (isinstance(info, dict) and cell.get("cell_type") == "code" and info.get("solution") is True):
            continue
        grade_id, source = info.get("grade_id"), cell.get("source", "")
        source = "".join(source) if isinstance(source, list) and all(isinstance(x, str) for x in source) else source
        if isinstance(grade_id, str) and isinstance(source, str):
            found[grade_id] = source
    return found


def identify_lesson(path: Path, nb, graded: Mapping[str, Any] | None = None) -> str | None:
    """The lesson of a submission: by the ``NN_`` prefix of its file name, else by the grade
    ids of its solution cells; ``None`` if neither names a lesson with graded exercises."""
    graded = _material(graded)
    known = sorted({g.lesson for g in graded.values()})
    prefix = re.match(r"(\d\d)_", path.name)
    by_prefix = [lesson for lesson in known if prefix and lesson.startswith(prefix.group(0))]
    if len(by_prefix) == 1:
        return by_prefix[0]
    ids = set(_solution_ids(nb))
    counts = {lesson: len(ids & {g.name for g in graded.values() if g.lesson == lesson}) for lesson in known}
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] > 0 else None


def solution_sources(nb, names: list[str]) -> dict[str, str]:
    """Each exercise's solution cell source: the cell with its ``grade_id``, else the last
    code cell that defines a function of that name (metadata lost by an editor)."""
    cells = _solution_ids(nb)
    found = {name: cells[name] for name in names if name in cells}
    code = [c.get("source") for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    code = ["".join(c) if isinstance(c, list) else c for c in code]
    for name in set(names) - set(found):
        defining = [c for c in code if isinstance(c, str) and re.search(rf"^def {name}\(", c, re.M)]
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


def grade_submission(path: Path, student: str, *, graded: Mapping[str, Any] | None = None, limits: Limits = Limits(),
                     feedback: Path | None = None, data_dir: Path | None = None, sandboxed: bool = True) -> Result:
    """Grade one submitted notebook (module docstring) with ``graded``, the instructor material
    (``material.load().GRADED``: name -> ``Graded``); never raises for a bad submission.
    ``sandboxed=False`` runs it without bubblewrap, and the row's note says "not sandboxed"."""
    start = time.monotonic()
    graded = _material(graded)
    result = Result(student, "", str(path), "ok")
    try:
        raw, nb, result.note = _read(path)
        result.lesson = identify_lesson(path, nb, graded) or ""
    except Exception as err:  # noqa: BLE001 -- any unreadable file gets its row
        result.status, result.note = "unreadable", f"{type(err).__name__}: {str(err)[:200]}"
    else:
        if not result.lesson:
            result.status, result.note = "unknown lesson", "no NN_ prefix or exercise grade_id of a graded lesson"
        else:
            _grade(result, path.name, raw, nb, [g for g in graded.values() if g.lesson == result.lesson],
                   limits=limits, feedback=feedback, data_dir=data_dir, sandboxed=sandboxed)
    if not sandboxed:
        result.note = NOT_SANDBOXED + (f"; {result.note}" if result.note else "")
    result.seconds = time.monotonic() - start
    return result


def _grade(result: Result, name: str, raw: bytes, nb, lesson: list, *, limits: Limits, feedback: Path | None,
           data_dir: Path | None, sandboxed: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="grade-"))
    try:
        executed, result.status = _run_notebook(folder, name, raw, minimal_env(folder, data_dir), limits,
                                                Jail(folder, _readable(data_dir)) if sandboxed else None)
        result.exercises = _grade_functions(lesson, solution_sources(nb, [g.name for g in lesson]), limits,
                                            data_dir=data_dir, sandboxed=sandboxed)
        if result.status == "ok" and any("timed out" in e.message for e in result.exercises.values()):
            result.status = "timeout"
        if feedback is not None:
            _write_feedback(executed or nb, result, lesson, feedback / result.student / f"{result.lesson}.ipynb",
                            sandboxed)
    except Exception as err:  # noqa: BLE001 -- the grader's own failure: the row says so, the batch goes on
        result.exercises = {g.name: ExerciseResult(0.0, g.points, "not graded") for g in lesson}
        result.status, result.note = "grader error", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        _remove(folder)


def _readable(data_dir: Path | None) -> tuple[Path, ...]:
    return (Path(data_dir),) if data_dir is not None else ()


def _remove(folder: Path) -> None:
    """Remove a folder the sandbox wrote (its processes are dead): modes it changed do not stop it."""
    def retry(function, path, _):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            function(path)
        except OSError:
            pass

    shutil.rmtree(folder, onerror=retry)


def read_inside(folder: Path, parts: tuple[str, ...], limit: int) -> bytes | None:
    """The bytes of ``folder/parts...``, a regular file of at most ``limit`` bytes, opened without
    following any link the sandbox may have planted; ``None`` otherwise."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fds = [os.open(folder, flags | os.O_DIRECTORY)]
    try:
        for part in parts[:-1]:
            fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fds.append(os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fds[-1]))
        info = os.fstat(fds[-1])
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(os.dup(fds[-1]), "rb") as f:
            data = f.read(limit + 1)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)


def _run_notebook(folder: Path, name: str, raw: bytes, env: dict[str, str], limits: Limits, jail: Jail | None):
    """Run the submission in ``folder/work`` (which holds only it); returns (executed notebook or None, status)."""
    work, logs = folder / "work", folder / "run"
    work.mkdir()
    logs.mkdir()
    (work / name).write_bytes(raw)
    code = run([sys.executable, "-I", str(RUNNER), str(work / name), str(logs / "executed.ipynb"),
                "--cell-timeout", str(int(limits.cell_timeout))], cwd=work, env=env,
               timeout=limits.submission_timeout, cpu_seconds=int(limits.submission_timeout) + 1,
               memory_bytes=limits.memory_bytes, log=folder.parent / f"{folder.name}-log.txt", jail=jail)
    (folder.parent / f"{folder.name}-log.txt").unlink(missing_ok=True)
    status = {OK: "ok", TIMED_OUT: "timeout", KERNEL_DIED: "kernel died", TIMEOUT_EXIT: "timeout",
              FAILED: "not run"}.get(code, "kernel died")
    data = read_inside(folder, ("run", "executed.ipynb"), NOTEBOOK_BYTES)
    try:
        return (nbformat.reads(data.decode("utf-8"), as_version=4) if data is not None else None), status
    except Exception:  # noqa: BLE001 -- a mangled copy: the feedback falls back to the submission
        return None, status


def _grade_functions(lesson: list, sources: dict[str, str], limits: Limits, *, data_dir: Path | None = None,
                     sandboxed: bool = True) -> dict[str, ExerciseResult]:
    """Hidden cases drawn here, each exercise's answers computed in its own sandboxed harness, compared here."""
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    results = {}
    for graded in lesson:
        if graded.name not in sources:
            results[graded.name] = ExerciseResult(0.0, graded.points, f"no solution cell for {graded.name} "
                                                  f"(grade_id {graded.name!r}) in the submission")
            continue
        cases = graded.grading.hidden_cases(gen)
        answer, why = _run_harness(graded, sources[graded.name], cases, limits, data_dir, sandboxed)
        results[graded.name] = _score(graded, cases, answer) if answer is not None else \
            ExerciseResult(0.0, graded.points, why)
    return results


def _run_harness(graded, source: str, cases: list[tuple], limits: Limits, data_dir: Path | None,
                 sandboxed: bool) -> tuple[dict[str, Any] | None, str]:
    """Run one exercise in a fresh harness; returns (its answers, "") or (None, why there are none)."""
    exercise, nonce = graded.exercise, os.urandom(NONCE_BYTES)
    buffer = io.BytesIO()
    torch.save({"name": exercise.name, "source": source, "call": exercise.call, "cases": cases,
                "twins": list(exercise.twins), "nonce": nonce}, buffer)
    folder = Path(tempfile.mkdtemp(prefix="harness-"))
    capture, state = Captured(RESULT_BYTES + 4096), {"begin": time.monotonic(), "started": None, "timed_out": False}

    def poll() -> bool:
        now = time.monotonic()
        if state["started"] is None and bytes(capture.data[:NONCE_BYTES]) == nonce:
            state["started"] = now
        if state["started"] is not None and now - state["started"] > limits.cell_timeout:
            state["timed_out"] = True
            return True
        return state["started"] is None and now - state["begin"] > limits.cell_timeout + HARNESS_START

    try:
        code = run([sys.executable, "-I", str(HARNESS)], cwd=folder, env=minimal_env(folder, data_dir),
                   timeout=limits.cell_timeout + HARNESS_START + 60,
                   cpu_seconds=int(limits.cell_timeout + HARNESS_START) + 60, memory_bytes=limits.memory_bytes,
                   log=folder.parent / f"{folder.name}-log.txt", poll=poll, stdin=buffer.getvalue(), capture=capture,
                   jail=Jail(folder, _readable(data_dir)) if sandboxed else None)
    finally:
        log = read_inside(folder.parent, (f"{folder.name}-log.txt",), 1 << 20) or b""
        (folder.parent / f"{folder.name}-log.txt").unlink(missing_ok=True)
        _remove(folder)
    started = bytes(capture.data[:NONCE_BYTES]) == nonce
    last = (log.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
    if TRIPWIRE_EXIT <= code < TRIPWIRE_EXIT + min(MAX_TWINS, len(exercise.twins)):
        twin = exercise.twins[code - TRIPWIRE_EXIT]
        return None, (f"{exercise.name} scored 0: it reached {twin}, the library's own version of what this "
                      "exercise asks you to write (directly or through another function); a graded solution "
                      "computes it itself")
    if state["timed_out"]:
        return None, f"{exercise.name} timed out after {limits.cell_timeout:g} s"
    if capture.overflow:
        return None, f"{exercise.name}: the answers take more than {RESULT_BYTES} bytes"
    answer = unframe(bytes(capture.data[NONCE_BYTES:] if started else capture.data), nonce)
    if answer is None:
        if started:
            return None, f"{exercise.name}: the process running it ended (exit status {code}) without an answer"
        return None, f"grader error: the harness stopped before the solution ran (exit status {code}: {last})"
    result = load_answer(answer)
    if "grader_error" in result:
        return None, f"grader error: {result['grader_error']}"
    return (result, "") if started else (None, "grader error: an answer came without the solution running")


def unframe(data: bytes, nonce: bytes) -> bytes | None:
    """The payload of ``MAGIC nonce length payload nonce`` when ``data`` is exactly that; else ``None``."""
    head = len(MAGIC) + len(nonce) + 8
    if len(data) < head + len(nonce) or data[:len(MAGIC)] != MAGIC or data[len(MAGIC):head - 8] != nonce:
        return None
    (length,) = struct.unpack("<Q", data[head - 8:head])
    if len(data) != head + length + len(nonce) or data[head + length:] != nonce:
        return None
    return data[head:head + length]


def load_answer(payload: bytes) -> dict[str, Any]:
    """The harness's answers from a ``torch.save`` zip, read with ``weights_only=True`` after checking
    that every entry is stored (not compressed) and that they add up to at most ``RESULT_BYTES``."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            entries = archive.infolist()
        total = sum(e.file_size for e in entries)
        if any(e.compress_type != zipfile.ZIP_STORED or e.file_size != e.compress_size for e in entries) \
                or total > RESULT_BYTES:
            return {"error": "the answers could not be read back (compressed or too large)"}
        result = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as err:  # noqa: BLE001
        return {"error": f"the answers could not be read back ({type(err).__name__}): return tensors or numbers"}
    if not isinstance(result, dict) or not (isinstance(result.get("error"), str) or
                                            isinstance(result.get("grader_error"), str) or
                                            isinstance(result.get("outputs"), (list, tuple))):
        return {"error": "the answers could not be read back"}
    return result


def _score(graded, cases: list[tuple], result: dict[str, Any]) -> ExerciseResult:
    """Full points when every hidden case is within tolerance of the reference computed here."""
    exercise = graded.exercise
    if "error" in result:
        return ExerciseResult(0.0, graded.points, f"{exercise.name}: {result['error']}")
    outputs = result["outputs"]
    if len(outputs) != len(cases):
        return ExerciseResult(0.0, graded.points, f"{exercise.name}: {len(outputs)} answers for {len(cases)} cases")
    worst = 0.0
    for k, (output, args) in enumerate(zip(outputs, cases)):
        try:
            error = graded.error(output, args)
        except AssertionError as err:
            return ExerciseResult(0.0, graded.points, f"hidden case {k + 1} of {len(cases)}: {err}")
        if not error <= exercise.tolerance:
            return ExerciseResult(0.0, graded.points,
                                  f"{exercise.name}: hidden case {k + 1} of {len(cases)} is off by {error:.3g} "
                                  f"(allowed {exercise.tolerance:g}). Hint: {exercise.hint}")
        worst = max(worst, error)
    return ExerciseResult(graded.points, graded.points,
                          f"{exercise.name}: all {len(cases)} hidden cases within {exercise.tolerance:g} "
                          f"(largest difference {worst:.1e})")


def _write_feedback(nb, result: Result, graded: list, target: Path, sandboxed: bool = True) -> None:
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
               "in a separate process; the outputs below are this notebook's own run."
               + ("" if sandboxed else " Graded without the sandbox."))
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
