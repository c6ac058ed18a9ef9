"""Graded coursework from the lessons, in nbgrader's format (docs/style.md, "Exercises"; docs/grading.md).

``python -m course_lib.coursework build-edition`` rebuilds the student edition (``notebooks/``) and
the instant checks' stored answers from the instructor material (:mod:`.versions`);
``release DIR [--source LESSONS]`` writes the student version of every lesson elsewhere.
``grade SUBMISSIONS... [--csv FILE] [--resume] [--jobs N] [--timeout S] [--instructor DIR]
[--no-sandbox]`` grades a class (:mod:`.batch`, rows written as they finish by :mod:`.gradebook`):
each submission is run for a feedback copy in a bubblewrap sandbox (:mod:`.sandbox`,
:mod:`.run_notebook`), then each graded function is run by itself, in a sandboxed harness of its own,
on hidden cases (:mod:`.run_exercise`) and compared with the references of the instructor material
(:mod:`.material`) in the grader's own process (:mod:`.grading`).
Needs ``nbgrader`` and ``nbclient`` (``pip install -e ".[coursework]"``); Linux and bubblewrap for the sandbox.
"""

from .batch import find_submissions, grade_all, write_csv
from .grading import ExerciseResult, Limits, Result, grade_submission
from .versions import grade_cells, lessons, release, solution_cells, source_folder, student_version

__all__ = ["ExerciseResult", "Limits", "Result", "find_submissions", "grade_all", "grade_cells", "grade_submission",
           "lessons", "release", "solution_cells", "source_folder", "student_version", "write_csv"]
