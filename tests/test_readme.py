"""The README a learner follows: set-up steps in a working order, every path it names present in
a clone, links that resolve, and the project's own pages (no team brief cited)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# paths the README names that a command creates (not in a clone)
MADE = {"site/", "site/index.html", ".venv", ".venv\\Scripts\\activate", "~/.cache/course_lib/mnist",
        "$XDG_CACHE_HOME/course_lib/mnist", "$COURSE_LIB_DATA/mnist", "notebooks/", "00_diffusion_refresher.ipynb"}


def test_setup_steps_come_in_a_working_order():
    steps = ["python3 -m venv .venv", "source .venv/bin/activate",
             "python -m pip install torch --index-url https://download.pytorch.org/whl/cpu",
             "python -m pip install -e .", "jupyter lab notebooks/"]
    where = [README.find(s) for s in steps]
    assert -1 not in where, [s for s, w in zip(steps, where) if w == -1]
    assert where == sorted(where), "the set-up steps are out of order"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"Python {requires.removeprefix('>=')} or newer" in README


def test_every_path_the_readme_names_exists_in_a_clone():
    named = {m for m in re.findall(r"`([^`\s]+)`", README)
             if ("/" in m or re.search(r"\.(py|md|ipynb|txt|cff|yml|toml|json)$", m))
             and not m.startswith(("http", "-", "<", "python", "git")) and "<" not in m}
    missing = sorted(m for m in named - MADE if not (ROOT / m).exists())
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_and_no_team_brief_is_cited(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = target.split("#", 1)[0]
        assert (page.parent / path).exists(), f"{page.name}: link to {target} does not resolve"
    assert not re.search(r"DESIGN\.md|STYLE\.md|\.\./shared", text), f"{page.name} cites the team's brief"


def test_license_and_citation():
    assert "MIT License" in (ROOT / "LICENSE").read_text() and "The Guidance Lab authors" in (ROOT / "LICENSE").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    assert cff.startswith("cff-version: 1.2.0") and "license: MIT" in cff
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"version: {version}" in cff
