"""The conda environment, pyproject and CI script agree, so they cannot drift."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {CONDA_NAMES.get(_name(r), _name(r)) for r in reqs}


def _conda_names() -> set[str]:
    names = set()
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
        elif in_deps and re.match(r"^  - [A-Za-z]", line):
            names.add(_name(line[4:]))
    return names - {"python", "pip", "pip:"}


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert _conda_names() == _pyproject_names()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S).group(1).strip()
    assert command in ci.splitlines()
    assert "pip install --quiet torch==2.13.0" in ci


def test_torch_range_admits_the_ci_build():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(r for r in deps if _name(r) == "torch")
    lower = re.search(r">=([\d.]+)", torch_req).group(1)
    upper = re.search(r"<([\d.]+)", torch_req).group(1)
    assert tuple(map(int, lower.split("."))) <= (2, 13, 0) < tuple(map(int, upper.split(".")))
