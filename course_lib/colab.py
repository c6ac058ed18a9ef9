"""Google Colab: the first cell of every student lesson installs the course there, and only there.

The maintainer sets :data:`REPOSITORY` once, here, when the repository is public; the
student-edition generator puts :func:`install_cell_source` first in each lesson. On Colab
(``"google.colab" in sys.modules``) that cell pip-installs the course from the repository; in
Jupyter, on Binder or in the course site's build it does nothing. The cell is self-contained
Python (on Colab ``course_lib`` is not installed yet when it runs).
"""

from __future__ import annotations

import re

# Set once the repository is public, e.g. "https://github.com/<owner>/guidance-lab"; then
# regenerate the student edition (python -m course_lib.coursework build-edition).
REPOSITORY = ""
REF = "main"  # the branch or tag Colab installs and the badges open
DISTRIBUTION = "guidance-lab"  # pyproject's [project] name
MARKER = "# Colab only:"  # the cell's first line; the course site leaves that cell out

_GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def requirement(repository: str = REPOSITORY, ref: str = REF) -> str:
    """What pip installs on Colab: ``guidance-lab @ git+<repository>@<ref>``."""
    if not repository:
        raise ValueError("repository is not set: give course_lib/colab.py REPOSITORY the public URL")
    return f"{DISTRIBUTION} @ git+{repository.rstrip('/')}@{ref}"


def install_cell_source(repository: str = REPOSITORY, ref: str = REF) -> str:
    """The first code cell of a student lesson: on Colab only, install the course."""
    if repository:
        body = (f"    print('Installing the course on Colab (about a minute)...')\n"
                f"    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', {requirement(repository, ref)!r}],\n"
                f"                   check=True)\n")
    else:
        body = ("    print('This copy of the course has no public address to install from yet: upload the course '\n"
                "          'folder and run  !pip install -e <folder>  or open the lessons in Jupyter (see README).')\n")
    return (f"{MARKER} installs the course when this notebook runs on Google Colab; elsewhere it does nothing.\n"
            "import sys\n"
            "\n"
            "if 'google.colab' in sys.modules:\n"
            "    import subprocess\n"
            "\n" + body)


def _owner_repo(repository: str) -> tuple[str, str]:
    if not repository:
        raise ValueError("repository is not set: give course_lib/colab.py REPOSITORY the public URL")
    match = _GITHUB.match(repository)
    if not match:
        raise ValueError(f"repository must be https://github.com/<owner>/<name>, got {repository!r}")
    return match.group(1), match.group(2)


def colab_url(notebook: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    """Where Colab opens ``notebook`` (a path in the repository, e.g. ``notebooks/03_....ipynb``)."""
    owner, name = _owner_repo(repository)
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{ref}/{notebook}"


def binder_url(repository: str = REPOSITORY, ref: str = REF) -> str:
    """Where Binder opens JupyterLab on the student edition."""
    owner, name = _owner_repo(repository)
    return f"https://mybinder.org/v2/gh/{owner}/{name}/{ref}?urlpath=lab/tree/notebooks"


def badges(notebooks: list[str], repository: str = REPOSITORY, ref: str = REF) -> str:
    """The README's Markdown: a Binder badge, then one Colab badge per notebook path."""
    lines = [f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repository, ref)})"]
    lines += [f"[![Open {n.rsplit('/', 1)[-1].removesuffix('.ipynb')} in Colab]"
              f"(https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(n, repository, ref)})"
              for n in notebooks]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m course_lib.colab: print the badges of the checkout's notebooks/
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        print(badges([p.relative_to(root).as_posix() for p in sorted((root / "notebooks").glob("[0-9]*.ipynb"))]))
    except ValueError as error:
        sys.exit(f"error: {error}")
