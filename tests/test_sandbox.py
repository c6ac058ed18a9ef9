"""The OS sandbox (issue 15): what a submission's processes can see, change and reach.

Harness probes: a solution of ``double`` that scores only if its attack works (it returns ``2 x``
after the attack succeeded, and raises otherwise), graded through the real path, two at a time.
Kernel probes: one notebook whose first cell tries each attack in the submission's own kernel
and prints what happened; the test reads its feedback copy. Then the result channel: forged
frames, oversized and compressed answers, and the instructions when bubblewrap is missing."""

import io
import json
import os
import socket
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor needs Linux")

from course_lib.coursework import grading, material, sandbox  # noqa: E402
from course_lib.exercises import Exercise  # noqa: E402

material.load()
from instructor.exercises.core import Graded, Grading  # noqa: E402

SANDBOXED = sandbox.unavailable() is None
needs_bwrap = pytest.mark.skipif(not SANDBOXED, reason="bubblewrap does not run here")
LESSON = "97_sandbox"
CHECKOUT = Path(material.__file__).resolve().parents[2]
SITE = Path(torch.__file__).resolve().parents[1]


def _cases(gen):
    return [(torch.randn(4, generator=gen),)]


DOUBLE = Graded(Exercise(name="double", lesson=LESSON, points=1, public_cases=_cases, hint="twice"),
                Grading("double", lambda x: 2 * x, _cases, understanding="synthetic", shortcut="synthetic"))


def _probe(attack: str) -> str:
    """A solution that scores only when ``attack`` (run inside the function) raises nothing."""
    return f"import os, socket, time\ndef double(x):\n{attack}\n    return 2 * x"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Another student's folder, the gradebook folder and a listening socket, all outside the sandbox."""
    tmp = tmp_path_factory.mktemp("world")
    other = tmp / "submitted" / "other_student"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("OTHER STUDENT'S WORK")
    (tmp / "feedback").mkdir()
    (tmp / "host_secret.txt").write_text("HOSTSECRET")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield {"tmp": tmp, "other": other, "feedback": tmp / "feedback", "port": server.getsockname()[1]}
    server.close()


def harness_attacks(world):
    return {
        "read_other_submission": f"    open({str(world['other'] / 'secret.txt')!r}).read()",
        "list_submissions_root": f"    os.listdir({str(world['other'].parent)!r})",
        "read_instructor_material": f"    open({str(CHECKOUT / 'instructor' / 'exercises' / 'core.py')!r}).read()",
        "see_the_checkout": f"    assert set(os.listdir({str(CHECKOUT)!r})) != {{'course_lib'}}",
        "write_the_gradebook_folder": f"    open({str(world['feedback'] / 'grades.csv')!r}, 'w').write('x,100')",
        "plant_sitecustomize": f"    open({str(SITE / 'sitecustomize.py')!r}, 'w').write('import builtins')",
        "plant_pth": f"    open({str(SITE / 'zz_evil.pth')!r}, 'w').write('import os')",
        "plant_in_course_lib": f"    open({str(CHECKOUT / 'course_lib' / 'usercustomize.py')!r}, 'w').write('x')",
        "replace_the_harness": f"    open({str(CHECKOUT / 'course_lib' / 'coursework' / 'run_exercise.py')!r}, 'a').write('#')",
        "network": f"    socket.create_connection(('127.0.0.1', {world['port']}), timeout=2)",
        "find_a_concurrent_job": "    time.sleep(3)\n"
                                 "    mine = os.path.basename(os.getcwd())\n"
                                 "    assert [d for d in os.listdir('/tmp') if d.startswith(('harness-', 'grade-')) "
                                 "and d != mine], 'only my own folder'",
        "write_host_tmp": "    open('/tmp/sandbox-escape-marker', 'w').write('x')\n"
                          "    assert os.path.exists('/tmp/sandbox-escape-marker')\n    raise OSError('private /tmp')",
    }


@pytest.fixture(scope="module")
def harness_rows(world):
    attacks = harness_attacks(world)
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(grading._grade_functions, [DOUBLE], {"double": _probe(code)},
                                     grading.Limits(cell_timeout=30), sandboxed=True)
                   for name, code in attacks.items()}
        futures["control"] = pool.submit(grading._grade_functions, [DOUBLE], {"double": _probe("    pass")},
                                         grading.Limits(cell_timeout=30), sandboxed=True)
        return {name: f.result()["double"] for name, f in futures.items()}


@needs_bwrap
def test_the_probe_scores_when_nothing_stops_it(harness_rows):
    assert harness_rows["control"].points == 1, harness_rows["control"].message


@needs_bwrap
@pytest.mark.parametrize("name", list(harness_attacks({"other": Path("/x/y"), "feedback": Path("/x"), "port": 1})))
def test_no_attack_from_a_solution_succeeds(harness_rows, name):
    row = harness_rows[name]
    assert row.points == 0, row.message
    assert "grader error" not in row.message, row.message


@needs_bwrap
def test_nothing_was_planted_outside(harness_rows, world):
    assert not (SITE / "sitecustomize.py").exists() and not (SITE / "zz_evil.pth").exists()
    assert not (CHECKOUT / "course_lib" / "usercustomize.py").exists()
    assert not Path("/tmp/sandbox-escape-marker").exists()
    assert os.listdir(world["feedback"]) == []
    assert "Read-only file system" in harness_rows["plant_sitecustomize"].message


KERNEL_PROBE = """import os, json, socket
out = {{"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
def attempt(name, fn):
    try:
        fn(); out[name] = "DONE"
    except Exception as err:
        out[name] = type(err).__name__
attempt("signal_grader", lambda: os.kill({grader}, 0))
attempt("read_grader_cmdline", lambda: open("/proc/{grader}/cmdline").read())
attempt("read_other", lambda: open({other!r}).read())
attempt("read_instructor", lambda: open({instructor!r}).read())
attempt("plant_site", lambda: open({site!r}, "w").write("x"))
attempt("replace_harness", lambda: open({harness!r}, "a").write("#"))
attempt("network", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("new_user_namespace", lambda: os.unshare(os.CLONE_NEWUSER) if hasattr(os, "unshare") else 1 / 0)
print("PROBE " + json.dumps(out))"""
LINKER = """import os
os.symlink({host_secret!r}, "../run/executed.ipynb.tmp")
os.replace("../run/executed.ipynb.tmp", "../run/executed.ipynb")
os.kill(os.getppid(), 9)  # the runner: no later write replaces the link"""


def _notebook(world, student, source):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    path = world["tmp"] / "submitted" / student / f"{LESSON}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    feedback = world["tmp"] / "kernel-feedback"
    row = grading.grade_submission(path, student, graded={"double": DOUBLE}, feedback=feedback,
                                   limits=grading.Limits(cell_timeout=60, submission_timeout=120))
    return row, nbformat.read(feedback / student / f"{LESSON}.ipynb", as_version=4)


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def kernel_rows(world):
    host_secret = str(world["tmp"] / "host_secret.txt")
    probe = KERNEL_PROBE.format(grader=os.getpid(), other=str(world["other"] / "secret.txt"),
                                instructor=str(CHECKOUT / "instructor" / "exercises" / "core.py"),
                                site=str(SITE / "sitecustomize.py"), port=world["port"],
                                harness=str(CHECKOUT / "course_lib" / "coursework" / "run_exercise.py"))
    with ThreadPoolExecutor(2) as pool:
        prober = pool.submit(_notebook, world, "prober", probe)
        linker = pool.submit(_notebook, world, "linker", LINKER.format(host_secret=host_secret))
        return {"prober": prober.result(), "linker": linker.result()}


@needs_bwrap
def test_the_kernel_runs_as_nobody_without_a_view_of_the_grader(kernel_rows):
    row, nb = kernel_rows["prober"]
    text = _printed(nb)
    assert "PROBE " in text, (row, text)
    probes = json.loads(text.split("PROBE ", 1)[1].splitlines()[0])
    assert probes["uid"] == 65534 and os.getpid() not in probes["pids"] and max(probes["pids"]) < 100, probes
    for name in ("signal_grader", "read_grader_cmdline", "read_other", "read_instructor", "plant_site",
                 "replace_harness", "network", "new_user_namespace"):
        assert probes[name] != "DONE", (name, probes)
    assert not (SITE / "sitecustomize.py").exists()


@needs_bwrap
def test_a_link_planted_in_place_of_the_run_copy_is_not_followed(kernel_rows):
    row, nb = kernel_rows["linker"]
    assert "HOSTSECRET" not in nbformat.writes(nb)
    assert row.status == "kernel died", row


def test_a_forged_or_oversized_answer_is_refused():
    nonce = os.urandom(16)
    payload = io.BytesIO()
    torch.save({"outputs": [torch.zeros(3)]}, payload)
    frame = grading.MAGIC + nonce + len(payload.getvalue()).to_bytes(8, "little") + payload.getvalue() + nonce
    assert grading.unframe(frame, nonce) == payload.getvalue()
    assert grading.unframe(frame, os.urandom(16)) is None  # another nonce: forged
    assert grading.unframe(b"x" + frame, nonce) is None and grading.unframe(frame + b"x", nonce) is None
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (1 << 20))
    assert "compressed" in grading.load_answer(packed.getvalue())["error"]
    assert "error" in grading.load_answer(b"not a zip")


FORGE = """import os, struct
def double(x):
    fake = b"COURSE-LIB-ANSWER\\n" + os.urandom(16)
    for fd in range(1, 30):
        try:
            os.write(fd, fake + struct.pack("<Q", 4) + b"PK\\5\\6" + fake[-16:])
        except OSError:
            pass
    os._exit(0)"""
HUGE = "def double(x):\n    return torch.zeros(20_000_000) + 2 * x.sum()"


@pytest.mark.parametrize("source,why", [(FORGE, "without an answer"), (HUGE, "answers take more than")],
                         ids=["forged_frame", "oversized_answer"])
def test_forged_frames_and_huge_answers_score_zero(source, why):
    row = grading._grade_functions([DOUBLE], {"double": "import torch\n" + source}, grading.Limits(cell_timeout=60),
                                   sandboxed=SANDBOXED)["double"]
    assert row.points == 0 and why in row.message, row.message


def test_without_bubblewrap_grade_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    message = sandbox._probe()
    assert "apt-get install bubblewrap" in message and "--no-sandbox" in message
    monkeypatch.setitem(sandbox._CHECKED, "result", message)
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        sandbox.check()


def test_without_the_sandbox_every_row_says_so(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def double(x):\n    return 2 * x",
                                          metadata={"nbgrader": {"solution": True, "grade_id": "double"}})]
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(nb, path)
    row = grading.grade_submission(path, "someone", graded={"double": DOUBLE}, sandboxed=False,
                                   limits=grading.Limits(cell_timeout=60, submission_timeout=120))
    assert row.score == 1 and row.note.startswith("not sandboxed"), row
