"""The grader against the attacks of issue 10, on a tiny synthetic lesson (``99_test``: two
cheap exercises defined here, public and instructor halves). One batch grades every attack at
once (two at a time, a 5-second cell timeout), sandboxed where bubblewrap runs; each test then
checks one row: no mark that was not earned, the batch whole, the honest submission full marks,
nothing left running, the source lesson unchanged."""

import hashlib
import os
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import torch

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from course_lib.coursework import grading, material, sandbox  # noqa: E402
from course_lib.exercises import Exercise  # noqa: E402

material.load()
from instructor.exercises.core import Graded, Grading  # noqa: E402

SANDBOXED = sandbox.unavailable() is None

LESSON = "99_test"
HONEST = {"double": "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
          "shift": "def shift(x, a):\n    ### BEGIN SOLUTION\n    return x + a\n    ### END SOLUTION"}
WRONG = {"double": "def double(x):\n    return x", "shift": "def shift(x, a):\n    return x - a"}
STUB = {name: f'def {name}(*args):\n    raise NotImplementedError("exercise {name}")' for name in HONEST}
SECRET = "GRADER_ONLY_SECRET"


def _cases(gen):
    return [(torch.randn(5, generator=gen),), (torch.randn(1, 3, generator=gen, dtype=torch.float64),)]


def _shift_cases(gen):
    return [(torch.randn(4, generator=gen), torch.rand((), generator=gen).item()), (torch.zeros(2), -1.0)]


def _graded(name, cases, reference, hint):
    return Graded(Exercise(name=name, lesson=LESSON, points=1, public_cases=cases, hint=hint),
                  Grading(name, reference, cases, understanding="synthetic", shortcut="synthetic"))


GRADED = {"double": _graded("double", _cases, lambda x: 2 * x, "twice"),
          "shift": _graded("shift", _shift_cases, lambda x, a: x + a, "add")}


def _meta(grade_id, *, grade, solution, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": grade, "schema_version": 3, "solution": solution,
            "task": False}
    return {"nbgrader": meta | ({"points": points} if points else {})}


def lesson(solutions=HONEST, before="x = 1", after="print('the end')"):
    """The synthetic lesson with the given solution cells and an extra cell before and after them.
    The kernel never imports torch (fast cells); its grade cells are plain asserts."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(before)]
    for name, source in solutions.items():
        nb.cells += [nbformat.v4.new_code_cell(source, metadata=_meta(name, grade=False, solution=True)),
                     nbformat.v4.new_code_cell(f"assert {name}(3{', 1' if name == 'shift' else ''}) == "
                                               f"{6 if name == 'double' else 4}",
                                               metadata=_meta(f"check_{name}", grade=True, solution=False, points=1))]
    nb.cells.append(nbformat.v4.new_code_cell(after))
    return nb


DAEMON = """import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import os, time\\nif os.fork(): os._exit(0)\\nos.setsid()\\n"
                  "if os.fork(): os._exit(0)\\nopen({path!r}, 'w').write(str(os.getpid()))\\ntime.sleep(900)",
                  "DAEMON_MARKER"])
import time; time.sleep(2)
print("DAEMON STARTED" if os.path.exists({path!r}) else "NO DAEMON")"""


def attacks(tmp):
    """name -> notebook (or raw bytes) of each attack, with the marks it may earn."""
    poison = textwrap.dedent("""\
        import os, glob
        print("LISTING", sorted(os.listdir(".")))
        mine = os.path.realpath("99_test.ipynb")
        print("FOUND", [p for p in glob.glob("../**/*.ipynb", recursive=True)
                        if os.path.realpath(p) != mine and "BEGIN SOLUTION" in open(p).read()])
        os.makedirs(os.path.expanduser("~/.ipython/profile_default/startup"), exist_ok=True)
        open(os.path.expanduser("~/.ipython/profile_default/startup/00-pass.py"), "w").write(
            "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)")
        open("99_test.ipynb", "w").write("{}")
        for d in (os.path.expanduser("~"), ".."):
            try:
                open(os.path.join(d, "sitecustomize.py"), "w").write("import builtins; builtins.POISON = 1")
            except OSError:
                pass""")
    env_cheat = {"double": 'import os\ndef double(x):\n    return 2 * x if os.environ.get("%s") else 0 * x' % SECRET,
                 "shift": WRONG["shift"]}
    return {
        "honest": (lesson(), 2),
        "warns": (lesson({"double": "import warnings, sys\ndef double(x):\n    warnings.warn('a UserWarning')\n"
                                    "    print('noise', file=sys.stderr)\n    return 2 * x", "shift": HONEST["shift"]},
                         before="import warnings; warnings.warn('in the kernel too')"), 2),
        "stub": (lesson(STUB), 0),
        "custom_exc": (lesson(STUB, before="get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"), 0),
        "patched_checks": (lesson({"double": "import course_lib.exercises.core as core\ncore.difference = lambda *a: 0.0\n"
                                             + WRONG["double"], "shift": WRONG["shift"]},
                                  before="import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\n"
                                         "import course_lib.checks as c\nc.check = lambda *a, **k: None"), 0),
        "poison": (lesson(WRONG, before=poison), 0),
        "after_poison": (lesson(STUB), 0),  # graded after the poisoner, in the same batch
        "forged_stdout": (lesson(STUB, before="import sys, os\nprint('forged_stdout  99_test  2/2  ok FORGED')\n"
                                              "sys.__stdout__.write('FORGED 2/2\\n')\nos.write(1, b'FORGED 2/2\\n')\n"
                                              "os.write(2, b'FORGED 2/2\\n')"), 0),
        "kernel_exit": (lesson(STUB, before="import os\nos._exit(0)"), 0),
        "exit_in_solution": (lesson({"double": "import os\nos._exit(3)\n" + HONEST["double"],
                                     "shift": HONEST["shift"]}), 1),  # the other exercise is still graded
        "endless_cell": (lesson(STUB, before="while True:\n    pass"), 0),
        "endless_ignoring_interrupt": (lesson(STUB, before="import signal\nsignal.signal(signal.SIGINT, "
                                                           "signal.SIG_IGN)\nwhile True:\n    pass"), 0),
        "endless_function": (lesson({"double": "def double(x):\n    while True:\n        pass",
                                     "shift": HONEST["shift"]}), 1),
        "daemon": (lesson(STUB, before=DAEMON.format(path="daemon_kernel.pid")), 0),
        "daemon_in_solution": (lesson({"double": DAEMON.format(path="daemon_harness.pid") + "\n"
                                       + HONEST["double"], "shift": WRONG["shift"]}), 0),
        "environment": (lesson(env_cheat, before=f"import os\nprint('ENV', sorted(os.environ), "
                                                 f"os.environ.get('{SECRET}'), os.environ['HOME'])"), 0),
        "invalid": (b"{ this is not a notebook", 0),
        "empty": (b"", 0),
    }


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every attack in one batch; returns (rows by student, tmp folder, grader output, source hash before)."""
    tmp = tmp_path_factory.mktemp("grading")
    source = tmp / "source"
    source.mkdir()
    nbformat.write(lesson(), source / f"{LESSON}.ipynb")
    before = _sha(source / f"{LESSON}.ipynb")
    submitted = tmp / "submitted"
    cases = attacks(tmp)
    for student, (nb, _) in cases.items():
        (submitted / student).mkdir(parents=True)
        target = submitted / student / f"{LESSON}.ipynb"
        target.write_bytes(nb) if isinstance(nb, bytes) else nbformat.write(nb, target)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET, "yes")
        submissions = sorted((p, p.parent.name) for p in submitted.glob(f"*/{LESSON}.ipynb"))
        # the poisoner first, then the submission it tries to poison
        submissions.sort(key=lambda s: (s[1] != "poison", s[1] != "after_poison", s[1]))
        lines = []
        start = time.monotonic()
        saved = os.dup(1), os.dup(2)
        limits = grading.Limits(cell_timeout=5, submission_timeout=40)
        with open(tmp / "grader_fd_output.txt", "wb") as sink:  # whatever reaches the grader's own stdout/stderr
            os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
            try:
                with ThreadPoolExecutor(2) as pool:
                    results = list(pool.map(lambda s: grading.grade_submission(
                        s[0], s[1], graded=GRADED, limits=limits, feedback=tmp / "feedback", sandboxed=SANDBOXED),
                        submissions))
                lines += [r.line() for r in results]
            finally:
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        seconds = time.monotonic() - start
    rows = {r.student: r for r in results}
    return {"rows": rows, "tmp": tmp, "lines": lines, "source": source, "before": before, "cases": cases,
            "seconds": seconds}


def test_the_batch_grades_every_submission(graded):
    rows, cases = graded["rows"], graded["cases"]
    assert sorted(rows) == sorted(cases)
    assert len(graded["lines"]) == len(cases)
    assert all(("not sandboxed" in r.note) != SANDBOXED for r in rows.values())


@pytest.mark.parametrize("student", list(attacks(Path("/tmp"))))
def test_no_submission_earns_a_mark_it_did_not_earn(graded, student):
    row, (_, earned) = graded["rows"][student], graded["cases"][student]
    assert row.score == earned, (student, row.status, {k: v.message for k, v in row.exercises.items()})


def test_honest_and_warning_submissions_get_full_marks_and_ok(graded):
    for student in ("honest", "warns"):
        row = graded["rows"][student]
        assert (row.score, row.max_score, row.status) == (2, 2, "ok"), row


def test_statuses_say_what_happened(graded):
    rows = graded["rows"]
    assert rows["kernel_exit"].status == "kernel died"
    for student in ("endless_cell", "endless_ignoring_interrupt", "endless_function"):
        assert rows[student].status == "timeout", student
    assert "timed out" in rows["endless_function"].exercises["double"].message
    assert "process running it ended" in rows["exit_in_solution"].exercises["double"].message
    assert rows["invalid"].status == rows["empty"].status == "unreadable"


def test_student_output_never_reaches_the_grader(graded):
    assert "FORGED" in _outputs(graded, "forged_stdout")  # it did print, into its own notebook
    assert "FORGED" not in (graded["tmp"] / "grader_fd_output.txt").read_text() + "\n".join(graded["lines"])
    assert [line.split()[0] for line in graded["lines"]].count("forged_stdout") == 1


def test_nothing_a_submission_started_outlives_its_grading(graded):
    # the kernel's daemon writes its pid in the submission's own folder (all it can write), printed back
    text = _outputs(graded, "daemon")
    assert "DAEMON STARTED" in text, "the daemon never started, the test proves nothing"
    assert not _alive_daemons(), _alive_daemons()
    # the harness refuses to start a process at all
    assert "refuses subprocess.Popen" in graded["rows"]["daemon_in_solution"].exercises["double"].message


def _alive_daemons():
    """Processes still running the daemon's code (its command line carries the marker)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"DAEMON_MARKER" in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except OSError:
            pass
    return found


def _feedback(graded, student):
    return nbformat.read(graded["tmp"] / "feedback" / student / f"{LESSON}.ipynb", as_version=4)


def _outputs(graded, student):
    cells = _feedback(graded, student).cells
    return "\n".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))


def _errors(graded, student):
    cells = _feedback(graded, student).cells
    return " ".join(o.get("ename", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_the_working_folder_holds_only_the_submission_and_poison_stays_there(graded):
    text = _outputs(graded, "poison")
    assert "LISTING ['99_test.ipynb']" in text and "FOUND []" in text
    # the submission graded next still runs in a clean kernel: its stub's error is not swallowed
    assert graded["rows"]["after_poison"].status == "ok"
    assert "NotImplementedError" in _errors(graded, "after_poison")


def test_the_graders_environment_is_not_visible(graded):
    text = _outputs(graded, "environment")
    assert "ENV [" in text and "'PATH'" in text and SECRET not in text and "None" in text
    assert "/grade-" in text  # HOME is the submission's temporary folder


def test_feedback_carries_each_exercises_verdict(graded):
    nb = _feedback(graded, "honest")
    notes = [c.source for c in nb.cells if c.metadata.get("course_lib_grader")]
    assert notes[0].startswith("**Grade: 2/2**") and len(notes) == 3
    assert any("double 1/1" in n for n in notes) and nb.cells[0].metadata.get("course_lib_grader")
    text = _outputs(graded, "honest")
    assert "the end" in text  # the notebook ran to its end


def test_the_instructors_lesson_is_unchanged(graded):
    assert _sha(graded["source"] / f"{LESSON}.ipynb") == graded["before"]


@pytest.mark.parametrize("jailed", [False, True], ids=["supervisor", "supervisor+sandbox"])
def test_the_supervisor_kills_a_detached_process_that_would_otherwise_survive(tmp_path, jailed):
    if jailed and not SANDBOXED:
        pytest.skip("bubblewrap does not run here")
    pid_file = tmp_path / "pid"
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON.format(path=str(pid_file)))
    env = sandbox.minimal_env(tmp_path, None)
    code = sandbox.run([sys.executable, str(script)], cwd=tmp_path, env=env, timeout=30, cpu_seconds=30,
                       memory_bytes=2 << 30, log=tmp_path / "log", jail=sandbox.Jail(tmp_path) if jailed else None)
    assert code == 0
    assert pid_file.exists(), "the daemon never started, the test proves nothing"
    assert not _alive_daemons(), _alive_daemons()
    if not jailed:
        assert not os.path.exists(f"/proc/{int(pid_file.read_text())}")
