"""Graded coursework from the lessons, in nbgrader's format (docs/style.md, "Exercises"; README "Grading a class").

``python -m course_lib.coursework release DIR [--source LESSONS]`` writes the student version of
every lesson (:mod:`.versions`). ``python -m course_lib.coursework grade SUBMISSIONS... [--csv FILE]
[--jobs N] [--timeout S] [--source LESSONS]`` grades a class (:mod:`.batch`): each submission is run
for a feedback copy in its own supervised sandbox (:mod:`.sandbox`, :mod:`.runner`), then its
graded functions are run by themselves on hidden cases (:mod:`.harness`) and compared with the
references of :mod:`course_lib.exercises` in the grader's own process (:mod:`.grading`).
Needs ``nbgrader`` and ``nbclient`` (``pip install -e ".[coursework]"``); Linux for the supervisor.
"""

from .batch import find_submissions, grade_all, write_csv
from .grading import ExerciseResult, Limits, Result, grade_submission
from .versions import grade_cells, lessons, release, solution_cells, source_folder, student_version

__all__ = ["ExerciseResult", "Limits", "Result", "find_submissions", "grade_all", "grade_cells", "grade_submission",
           "lessons", "release", "solution_cells", "source_folder", "student_version", "write_csv"]
