"""``python -m course_lib.coursework release DIR`` | ``grade SUBMISSIONS...`` | ``merge CSV... --csv OUT``
(README "Grading a class")."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import nbformat

from .. import data, exercises
from . import gradebook, material
from .batch import grade_all, merge_csv, scan, summary
from .grading import Limits, warm_up
from . import versions
from .versions import lessons, release, solution_cells, source_folder
from .sandbox import become_subreaper, kill_descendants, unavailable

PACKAGE = Path(__file__).resolve().parents[1]


def _unregistered(source: Path) -> list[str]:
    """Solution cells of the source lessons that no registry entry grades."""
    return [f"{path.name}: {name}" for path in lessons(source)
            for name in solution_cells(nbformat.read(path, as_version=4)) if name not in exercises.REGISTRY]


def _grade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The grade command (README "Grading a class"): every misuse is one line naming the argument."""
    if args.resume and not args.csv:
        parser.error("--resume needs --csv FILE, the gradebook of the batch to finish")
    problem = gradebook.output_problem(args.csv) if args.csv else None
    if problem:
        parser.error(problem)
    try:
        limits = Limits(args.timeout, args.submission_timeout or 10 * args.timeout, int(args.memory_gb * 2**30))
        scan(args.submissions, [])  # a missing path or an empty folder is named before anything is loaded
        source = source_folder(args.source) if args.source is not None else None
        instructor = material.instructor_folder(args.instructor)
        graded = material.load(instructor)
        submissions = scan(args.submissions, graded.lessons())
        source = source or instructor / "lessons"
    except ValueError as err:
        parser.error(str(err))
    except (ImportError, SyntaxError) as err:
        parser.error(f"--instructor {args.instructor or instructor}: its exercises could not be imported "
                     f"({type(err).__name__}: {err})")
    problem = None if args.no_sandbox else unavailable()
    if problem:
        parser.error(problem)
    if source.is_dir():
        try:
            unregistered = _unregistered(source)
        except ValueError as err:
            parser.error(str(err))
        for missing in unregistered:
            print(f"warning: not graded, no registry entry: {missing}", file=sys.stderr)
    feedback = args.feedback or (args.csv.parent / "feedback" if args.csv else None)
    roots = [os.path.realpath(p) for p in args.submissions if Path(p).is_dir()]
    for flag, path in (("--csv", args.csv), ("--feedback", feedback)):
        where = os.path.realpath(path) if path else ""
        inside = [r for r in roots if path and (where == r or where.startswith(r.rstrip(os.sep) + os.sep))]
        if inside:
            parser.error(f"{flag} {path} is inside the submissions folder {inside[0]}: put it elsewhere")
    try:
        warm_up(graded.GRADED)
    except Exception as err:  # noqa: BLE001 -- the instructor's material, not a submission: stop before grading
        print(f"error: --instructor {instructor}: a reference or hidden-case generator failed before grading "
              f"({type(err).__name__}: {err})", file=sys.stderr)
        return 1
    book = _open_gradebook(args, parser, submissions, graded) if args.csv else None
    skipped = sum(book.has(s.student, s.file) for s in submissions) if book else 0
    if skipped:
        print(f"resuming {args.csv}: {skipped} submission(s) already in it are not graded again", flush=True)
    signal.signal(signal.SIGTERM, _interrupted)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")  # a line never stops the batch, whatever the terminal
    become_subreaper()  # a backstop: anything that escapes a supervisor is re-parented here and killed below
    start = time.monotonic()
    try:
        results = grade_all(submissions, jobs=args.jobs, gradebook=book, sandboxed=not args.no_sandbox,
                            watch=[PACKAGE, instructor] + ([source] if args.source and source.is_dir() else []),
                            report=lambda r: print(r.line(), flush=True), warm=False, graded=graded.GRADED,
                            limits=limits, feedback=feedback, data_dir=data.cache_dir())
    except KeyboardInterrupt:
        print(f"interrupted: every finished row is in {args.csv or 'no gradebook (no --csv)'}"
              + ("; the same command with --resume grades the rest" if args.csv else ""), file=sys.stderr)
        return 130
    except OSError as err:
        print(f"error: the gradebook {args.csv} could not be written ({err}); the rows before are in it",
              file=sys.stderr)
        return 1
    finally:
        kill_descendants()
        if book is not None:
            book.close()
    print(summary(results, time.monotonic() - start, args.jobs, skipped))
    if args.csv:
        print(f"wrote {args.csv}" + (f"; feedback in {feedback}" if feedback else ""))
    return 0


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the batch like Ctrl-C: running submissions finish and are cleaned up


def _open_gradebook(args, parser, submissions, graded) -> gradebook.Gradebook:
    """The --csv gradebook, new (refused when it exists, unless --resume) or reopened with --resume."""
    lessons = sorted({s.lesson for s in submissions if s.lesson})
    columns = [g.name for lesson in lessons for g in graded.for_lesson(lesson)]
    try:
        book = gradebook.Gradebook(args.csv, columns, order=list(graded.GRADED), resume=args.resume)
    except FileExistsError:
        parser.error(f"--csv {args.csv} exists: pass --resume to grade only the submissions it lacks, "
                     "or give another --csv to grade them all again")
    except ValueError as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"--csv {args.csv}: {err.strerror or err}")
    if book.regraded:
        print(f"resuming {args.csv}: {book.regraded} row(s) of the grader's own failures ("
              f"{' or '.join(gradebook.REGRADE)}) removed, graded again", file=sys.stderr)
    if book.dropped:
        print(f"warning: {args.csv} ended in an unfinished row, removed (graded again): {book.dropped[:80]!r}",
              file=sys.stderr)
    return book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.coursework",
                                     description="Student versions of the lessons, and grading a class.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="write the student version of every lesson into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--source", type=Path,
                   help="folder of the instructor's solved lessons (default: the checkout's instructor/lessons/)")
    p.add_argument("--force", action="store_true", help="replace student notebooks already in DIR")
    p = sub.add_parser("build-edition", help="rebuild the student edition (notebooks/) and the instant checks' "
                                             "stored answers from the instructor material")
    p.add_argument("--instructor", type=Path, help="the course's instructor/ folder (default: the checkout's)")
    p = sub.add_parser("grade", help="grade submitted notebooks; one line per submission, a summary, a CSV")
    p.add_argument("submissions", type=Path, nargs="+",
                   help="notebooks, or folders <student>/<NN_lesson>.ipynb or <student>/<assignment>/<NN_lesson>.ipynb")
    p.add_argument("--csv", type=Path, help="the gradebook: each row written as its submission is graded "
                                            "(feedback/ goes next to it); refused if it exists, unless --resume")
    p.add_argument("--resume", action="store_true",
                   help="finish the batch of --csv FILE: grade only the submissions it holds no row for "
                        "(rows saying 'grader error' or 'library changed' are graded again)")
    p.add_argument("--instructor", type=Path,
                   help="the course's instructor/ folder: references and hidden cases (default: the checkout's)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade without bubblewrap (where it cannot run); every graded row's note says so")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds per notebook cell and per graded function (default 300)")
    p.add_argument("--submission-timeout", type=float, help="seconds per notebook run (default 10 x --timeout)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address space per process, GiB (default 4)")
    p.add_argument("--feedback", type=Path, help="feedback folder (default: feedback/ next to --csv)")
    p.add_argument("--source", type=Path,
                   help="folder of the instructor's lessons, checked for ungraded exercises and watched for changes "
                        "(default: lessons/ of --instructor)")
    p = sub.add_parser("merge", help="merge gradebooks graded on several machines into one CSV")
    p.add_argument("csvs", type=Path, nargs="+")
    p.add_argument("--csv", type=Path, required=True, help="the merged gradebook")
    args = parser.parse_args(argv)
    if args.command == "merge":
        missing = [str(p) for p in args.csvs if not p.is_file()]
        if missing:
            parser.error(f"no such CSV: {', '.join(missing)}")
        try:
            print(f"wrote {args.csv}: {merge_csv(args.csvs, args.csv)} rows")
        except ValueError as err:
            parser.error(str(err))
        except OSError as err:
            parser.error(f"--csv {args.csv}: {err.strerror or err}")
        return 0
    try:
        versions.require_nbgrader()
    except RuntimeError as err:
        parser.error(str(err))
    if args.command == "build-edition":
        try:
            versions.build_edition(args.instructor)
        except ValueError as err:
            parser.error(str(err))
        return 0
    if args.command == "release":
        try:
            paths = release(args.dir, source=args.source, force=args.force, first_cells=versions.edition_first_cells())
        except (FileExistsError, ValueError) as err:
            parser.error(str(err))
        for path in paths:
            print(f"wrote {path}")
        return 0
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer, got {args.jobs}")
    return _grade(args, parser)


if __name__ == "__main__":
    sys.exit(main())
