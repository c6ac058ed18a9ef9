"""The gradebook CSV: one row per submission, on disk as soon as it is graded, safe in a spreadsheet.

Columns: ``student, lesson, score, max_score, status``, one column per exercise of the lessons
graded (in the registry's order), then ``file, note``. :class:`Gradebook` appends each row with
one ``write`` and ``fsync``, so a crash, a kill or Ctrl-C keeps every finished row; with
``resume`` it reopens a gradebook and knows which submissions it holds (by ``student`` and
``file``). A row that needs an exercise column the file lacks (a lesson first met after the
header was written) rewrites the file with the wider header (a new file renamed over the old
one: either the old or the new file is there, never half of one).

Every text cell is printable on one line (bytes that are not UTF-8 and control characters
become ``\\xNN``, ``\\n``...) and formula-safe (OWASP, "CSV Injection"): a cell starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``; the numbers the
grader writes itself (score, max_score, exercise points) stay numbers.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import stat
import threading
from pathlib import Path

FIRST, LAST = ["student", "lesson", "score", "max_score", "status"], ["file", "note"]
TEXT_COLUMNS = {"student", "lesson", "status", "file", "note"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MAX_GRADEBOOK_BYTES = 256 << 20
REGRADE = ("grader error", "library changed")  # statuses a resumed batch grades again


def printable(name: str | bytes) -> str:
    """``name`` as one line of valid text: bytes that are not UTF-8 (file names read with
    ``surrogateescape``) as ``\\xNN``, control and other invisible characters escaped."""
    if isinstance(name, str):
        try:
            name = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            name = name.encode("utf-8", "backslashreplace")
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def safe_cell(value: object, *, number: bool = False) -> str:
    """The cell as written: printable, and with a ``'`` before a leading formula character
    (unless ``number`` and the cell is a plain number, which a spreadsheet reads as one)."""
    text = printable(str(value))
    if text.startswith(_FORMULA) and not (number and _NUMBER.fullmatch(text)):
        return "'" + text
    return text


def _line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def output_problem(path: Path, *, flag: str = "--csv") -> str | None:
    """Why ``path`` cannot be the gradebook (one line naming ``flag``), or ``None``: it must be a
    regular file or not exist yet, not a symbolic link, in a folder."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.is_dir():
            return None
        return f"{flag} {path}: {parent} is not a folder"
    except OSError as err:
        return f"{flag} {path}: {err.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"{flag} {path} is a symbolic link; give the path of the file itself"
    if stat.S_ISDIR(info.st_mode):
        return f"{flag} {path} is a folder; give a file name, e.g. {path / 'grades.csv'}"
    if not stat.S_ISREG(info.st_mode):
        return f"{flag} {path} is not a regular file (a FIFO, a socket or a device); give a file name"
    return None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Gradebook:
    """An open gradebook CSV (module docstring). ``columns``: the exercise columns of a new file;
    ``order``: every exercise name in registry order (where a widened header puts new ones).
    ``resume=False`` refuses an existing file (``FileExistsError``); ``resume=True`` reopens it
    (``ValueError`` when it is not a gradebook) and removes the rows whose status is in
    ``regrade`` (the grader's failures, not the student's: they are graded again). Thread-safe."""

    def __init__(self, path: Path, columns: list[str] = (), *, order: list[str] = (), resume: bool = False,
                 regrade: tuple[str, ...] = REGRADE):
        self.path, self.order = Path(path), list(order)
        problem = output_problem(self.path)
        if problem:
            raise ValueError(problem)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.rows: list[dict[str, str]] = []
        self._keys: set[tuple[str, str]] = set()
        self.dropped = ""  # an unfinished last line found on resume, removed
        self.regraded = 0  # rows removed on resume because their status is in ``regrade``
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        self._fd = os.open(self.path, flags | (0 if resume else os.O_EXCL), 0o644)
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise ValueError(f"--csv {self.path} is not a regular file")
            self._lock_file()
            existing = self._read_existing() if resume else None
            if existing:
                kept = [r for r in existing if r.get("status") not in regrade]
                self.regraded = len(existing) - len(kept)
                if self.regraded:
                    self.rows = kept
                    self._keys = {(r.get("student"), r.get("file")) for r in kept}
                    self._rewrite(self.columns)
            if existing is None:
                self.columns = self._sorted(list(dict.fromkeys(columns)))
                self._append([FIRST + self.columns + LAST])
                _fsync_folder(self.path.parent)
        except BaseException:
            os.close(self._fd)
            raise

    def _lock_file(self) -> None:
        """One grader per gradebook: a second one (a resume started twice) is refused."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"--csv {self.path} is being written by another grader (it holds the file's lock); "
                             "wait for it, or give another --csv") from None

    def _sorted(self, names: list[str]) -> list[str]:
        known = [n for n in self.order if n in names]
        return known + [n for n in names if n not in known]

    def _read_existing(self) -> list[dict[str, str]] | None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None
        if size > MAX_GRADEBOOK_BYTES:
            raise ValueError(f"--csv {self.path} takes {size} bytes: not a gradebook of this grader")
        data = os.pread(self._fd, size, 0)
        end = data.rfind(b"\n") + 1
        if end < len(data):  # killed in the middle of a row: that submission is graded again
            self.dropped = data[end:].decode("utf-8", "replace")
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            data = data[:end]
        try:
            lines = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"--csv {self.path} is not a gradebook of this grader ({err})") from None
        header = lines[0] if lines else []
        if header[:5] != FIRST or header[-2:] != LAST:
            raise ValueError(f"--csv {self.path} is not a gradebook of this grader: its header is "
                             f"{printable(','.join(header))[:120]!r}")
        self.columns = header[5:-2]
        self.rows = [dict(zip(header, line)) for line in lines[1:] if line]
        self._keys = {(r.get("student"), r.get("file")) for r in self.rows}
        return self.rows

    def has(self, student: str, file: str) -> bool:
        """Whether a row for this submission (display names, as in :meth:`row`) is in the file."""
        with self._lock:
            return (safe_cell(student), safe_cell(file)) in self._keys

    def row(self, result) -> dict[str, str]:
        """The cells of a :class:`~course_lib.coursework.grading.Result`, made safe."""
        scored = bool(result.exercises)
        cells = {"student": safe_cell(result.student), "lesson": safe_cell(result.lesson),
                 "score": f"{result.score:g}" if scored else "0", "max_score": f"{result.max_score:g}" if scored else "",
                 "status": safe_cell(result.status), "file": safe_cell(result.file), "note": safe_cell(result.note)}
        cells.update({name: f"{e.points:g}" for name, e in result.exercises.items()})
        return cells

    def add(self, result) -> None:
        """Append ``result``'s row and flush it to the disk (widening the header first if needed)."""
        cells = self.row(result)
        with self._lock:
            new = [n for n in result.exercises if n not in self.columns]
            if new:
                self._widen(new)
            self._append([[cells.get(c, "") for c in FIRST + self.columns + LAST]])
            self.rows.append(cells)
            self._keys.add((cells["student"], cells["file"]))

    def _append(self, lines: list[list[str]]) -> None:
        data = b"".join(_line(cells) for cells in lines)
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def _widen(self, new: list[str]) -> None:
        """Rewrite the file with ``new`` exercise columns added."""
        self._rewrite(self._sorted(self.columns + new))

    def _rewrite(self, columns: list[str]) -> None:
        """Write the header and :attr:`rows` to a new file, renamed over the old (either is whole)."""
        header = FIRST + columns + LAST
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            data = b"".join(_line(cells) for cells in [header] + [[r.get(c, "") for c in header] for r in self.rows])
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        _fsync_folder(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._lock_file()
        self.columns = columns

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_csv(results: list, path: Path, *, order: list[str] = ()) -> None:
    """A whole gradebook at once (``path`` replaced): the columns of every exercise in ``results``."""
    path = Path(path)
    problem = output_problem(path)
    if problem:
        raise ValueError(problem)
    temp = path.with_name(f".{path.name}.{os.getpid()}.new")
    temp.unlink(missing_ok=True)
    names = list(dict.fromkeys(n for r in results for n in r.exercises))
    with Gradebook(temp, names, order=order) as book:
        for result in results:
            book.add(result)
    os.replace(temp, path)


def merge(paths: list[Path], target: Path) -> int:
    """Merge gradebooks written on several machines into ``target`` (columns united, rows sorted
    by student, lesson and file, every cell made safe again); returns the number of rows.
    ``ValueError`` naming the file that is not a gradebook or the target that cannot be one."""
    rows, columns = [], {}
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                names = reader.fieldnames or []
                if not set(FIRST + LAST) <= set(names):
                    raise ValueError(f"{printable(str(path))} is not a gradebook (it lacks the columns "
                                     f"{', '.join(c for c in FIRST + LAST if c not in names)})")
                columns.update(dict.fromkeys(names))
                rows += [{k: v for k, v in row.items() if k is not None} for row in reader]
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{printable(str(path))} is not a gradebook ({err})") from None
    header = FIRST + [c for c in columns if c not in FIRST + LAST] + LAST
    safe = [{c: safe_cell(row.get(c) or "", number=c not in TEXT_COLUMNS) for c in header} for row in rows]
    safe.sort(key=lambda r: (r["student"], r["lesson"], r["file"]))
    problem = output_problem(target)
    if problem:
        raise ValueError(problem)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.new")
    with open(temp, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(safe)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    return len(safe)
