"""``python -m course_lib.coursework release DIR`` | ``grade SUBMISSIONS...`` | ``merge CSV... --csv OUT``
(README "Grading a class")."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat

from .. import data, exercises
from .batch import find_submissions, grade_all, merge_csv, summary, write_csv
from .grading import Limits
from . import versions
from .versions import lessons, release, solution_cells, source_folder
from .sandbox import become_subreaper, kill_descendants

PACKAGE = Path(__file__).resolve().parents[1]


def _unregistered(source: Path) -> list[str]:
    """Solution cells of the source lessons that no registry entry grades."""
    return [f"{path.name}: {name}" for path in lessons(source)
            for name in solution_cells(nbformat.read(path, as_version=4)) if name not in exercises.REGISTRY]


def _grade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        limits = Limits(args.timeout, args.submission_timeout or 10 * args.timeout, int(args.memory_gb * 2**30))
        submissions = find_submissions(args.submissions)
        source = source_folder(args.source) if args.source is not None or _has_checkout() else None
    except ValueError as err:
        parser.error(str(err))
    if source is not None:
        for missing in _unregistered(source):
            print(f"warning: not graded, no registry entry: {missing}", file=sys.stderr)
    feedback = args.feedback or (args.csv.parent / "feedback" if args.csv else None)
    become_subreaper()  # a backstop: anything that escapes a supervisor is re-parented here and killed below
    start = time.monotonic()
    try:
        results = grade_all(submissions, jobs=args.jobs, limits=limits, feedback=feedback,
                            data_dir=data.cache_dir(), watch=[PACKAGE] + ([source] if source else []),
                            report=lambda r: print(r.line(), flush=True))
    finally:
        kill_descendants()
    print(summary(results, time.monotonic() - start, args.jobs))
    if args.csv:
        write_csv(results, args.csv)
        print(f"wrote {args.csv}" + (f"; feedback in {feedback}" if feedback else ""))
    return 0


def _has_checkout() -> bool:
    try:
        source_folder(None)
    except ValueError:
        return False
    return True


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
    p.add_argument("--csv", type=Path, help="write the gradebook here (feedback/ goes next to it)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds per notebook cell and per graded function (default 300)")
    p.add_argument("--submission-timeout", type=float, help="seconds per notebook run (default 10 x --timeout)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address space per process, GiB (default 4)")
    p.add_argument("--feedback", type=Path, help="feedback folder (default: feedback/ next to --csv)")
    p.add_argument("--source", type=Path,
                   help="folder of the instructor's lessons, checked for ungraded exercises and watched for changes "
                        "(default: the checkout's notebooks/ if any)")
    p = sub.add_parser("merge", help="merge gradebooks graded on several machines into one CSV")
    p.add_argument("csvs", type=Path, nargs="+")
    p.add_argument("--csv", type=Path, required=True, help="the merged gradebook")
    args = parser.parse_args(argv)
    if args.command == "merge":
        missing = [str(p) for p in args.csvs if not p.is_file()]
        if missing:
            parser.error(f"no such CSV: {', '.join(missing)}")
        print(f"wrote {args.csv}: {merge_csv(args.csvs, args.csv)} rows")
        return 0
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
