"""The instant check: it compares with the stored answers (never a reference in the package),
says "not attempted yet" for an untouched stub, names malformed answers, refuses damaged or stale
stored answers as the course's error; `yours_or` stands in for an unwritten exercise; every real
exercise's reference passes its own check and a slightly wrong answer fails it."""

import io
import pickle
import shutil

import pytest
import torch

from course_lib import checks, exercises
from course_lib.exercises import Exercise, expected
from course_lib.exercises.core import call_plain
from instructor import exercises as graded


@pytest.fixture
def double(monkeypatch):
    """A synthetic exercise ``double(x) = 2 x`` with its stored answers."""
    exercise = Exercise(name="double", lesson="99_test", points=1, hint="twice",
                        public_cases=lambda gen: [(torch.randn(6, 2, generator=gen),), (torch.ones(3),)])
    monkeypatch.setitem(exercises.REGISTRY, "double", exercise)
    answers = [2 * args[0] for args in exercise.cases()]
    monkeypatch.setattr(expected, "_stored", lambda: {"double": {"cases": expected.fingerprint(exercise.cases()),
                                                                 "outputs": answers}})
    return exercise


def test_a_right_answer_passes_and_prints_one_line(double, capsys):
    checks.check("double", lambda x: x + x)
    assert capsys.readouterr().out.startswith("✓ double: largest difference from the right answer on 2 cases")


def test_an_untouched_stub_is_not_attempted_yet_and_raises_nothing(double, capsys):
    def double_stub(x):
        raise NotImplementedError("exercise double: write this part")

    checks.check("double", double_stub)
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (lambda x: 0.0, "must return a torch tensor"), (lambda x: x[:1], "shape"),
    (lambda x: 2 * x * float("nan"), "off by inf"), (lambda x: 2 * x + 1e-3, "Hint: twice"),
    (lambda x: (2 * x).bool(), "real numbers")])
def test_wrong_and_malformed_answers_are_named(double, answer, message):
    with pytest.raises(AssertionError, match=message):
        checks.check("double", answer)


def test_an_answer_that_changes_its_inputs_cannot_change_the_comparison(double):
    def cheat(x):
        x.zero_()
        return x

    with pytest.raises(AssertionError, match="Hint"):
        checks.check("double", cheat)
    checks.check("double", lambda x: 2 * x)  # the public cases are untouched


def test_unknown_exercise_and_non_function_are_named(double):
    with pytest.raises(KeyError, match="double"):
        checks.check("no_such_exercise", lambda x: x)
    with pytest.raises(AssertionError, match="expected your function double"):
        checks.check("double", 3)


def test_yours_or_uses_the_students_function_once_written(double, capsys):
    def stub(x):
        raise NotImplementedError

    def buggy(x):
        return x

    fallback = lambda x: 2 * x  # noqa: E731
    assert checks.yours_or("double", stub, fallback, using="the library") is fallback
    assert "double is not written yet, so the cells below use the library" in capsys.readouterr().out
    assert checks.yours_or("double", buggy, fallback, using="the library") is buggy  # a wrong attempt is still theirs
    assert capsys.readouterr().out == ""


def test_damaged_or_stale_stored_answers_are_the_courses_error(tmp_path, monkeypatch):
    pt, digest = tmp_path / "expected.pt", tmp_path / "expected.sha256"
    shutil.copy(expected.EXPECTED, pt)
    shutil.copy(expected.DIGEST, digest)
    monkeypatch.setattr(expected, "EXPECTED", pt)
    monkeypatch.setattr(expected, "DIGEST", digest)
    expected._stored.cache_clear()
    name = sorted(exercises.REGISTRY)[0]
    cases = exercises.get(name).cases()
    assert expected.outputs(name, cases)
    with pytest.raises(expected.StaleExpected, match="other public cases"):
        expected.outputs(name, cases[:-1])
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pt.write_bytes(bytes(raw))
    expected._stored.cache_clear()
    with pytest.raises(expected.StaleExpected, match="does not match its SHA-256"):
        expected.outputs(name, cases)
    pt.unlink()
    expected._stored.cache_clear()
    with pytest.raises(expected.StaleExpected, match="build-edition"):
        expected.outputs(name, cases)
    expected._stored.cache_clear()


def test_fingerprint_tells_cases_apart():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    assert expected.fingerprint((x, 1.0, "a")) == expected.fingerprint((x.clone(), 1.0, "a"))
    assert expected.fingerprint((x,)) != expected.fingerprint((x.double(),))
    assert expected.fingerprint((x,)) != expected.fingerprint((x.reshape(2, 4),))
    y = x.clone()
    y[3, 1] += 1e-7
    assert expected.fingerprint((x,)) != expected.fingerprint((y,))
    assert expected.fingerprint((1,)) != expected.fingerprint((1.0,)) != expected.fingerprint((True,))
    model = torch.nn.Linear(2, 2)
    before = expected.fingerprint((model,))
    with torch.no_grad():
        model.bias += 1
    assert expected.fingerprint((model,)) != before


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_every_exercise_checks_its_own_reference_and_rejects_a_near_miss(name, capsys):
    """The stored answers are the reference's; a function one percent off fails the check."""
    item = graded.get(name)
    if item.exercise.call is not call_plain:
        pytest.skip("the answer is run through an adapter; its lesson's tests check right and wrong answers")
    checks.check(name, item.grading.reference)
    assert capsys.readouterr().out.startswith(f"✓ {name}")

    def near_miss(*args):
        out = item.grading.reference(*args)
        return tuple(o * 1.01 + 0.01 for o in out) if isinstance(out, tuple) else out * 1.01 + 0.01

    with pytest.raises(AssertionError, match="Hint"):
        checks.check(name, near_miss)


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_every_exercise_has_public_and_hidden_cases_a_hint_and_an_account(name):
    item = graded.get(name)
    public = item.exercise.cases()
    hidden = [item.grading.hidden_cases(torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert public and hidden[0] and item.exercise.hint
    assert len(hidden[0]) == len(hidden[1])
    assert "TODO" not in item.grading.understanding + item.grading.shortcut


@pytest.mark.parametrize("name", sorted(exercises.REGISTRY))
def test_cases_and_the_answer_runner_cross_a_process_boundary(name):
    """The grader hands each exercise's ``call`` and hidden cases to a sandboxed child process and
    reads answers back with weights_only=True: the cases pickle, ``call`` is importable by name
    (no lambda), the reference's value is made of tensors, numbers and tuples."""
    item = graded.get(name)
    cases = item.grading.hidden_cases(torch.Generator().manual_seed(5))
    torch.save({"call": item.exercise.call, "cases": cases}, io.BytesIO())
    assert pickle.loads(pickle.dumps(item.exercise.call)) is item.exercise.call
    for args in cases:
        buffer = io.BytesIO()
        torch.save(item.grading.reference(*args), buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
