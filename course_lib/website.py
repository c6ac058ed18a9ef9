"""The course site: every lesson as a web page, with its figures and sliders that move without a kernel.

    python -m course_lib.website build DIR                     # every lesson of notebooks/
    python -m course_lib.website build DIR --lessons 00 03     # a few
    python -m course_lib.website build DIR --source instructor/lessons   # the worked solutions

Each lesson is executed top to bottom in a fresh kernel (nbclient) with
``COURSE_LIB_STATIC_SLIDERS=1``, so every slider explorer shows itself as a
:class:`~course_lib.static_slider.StaticSlider` (all its frames in the page, swapped by a few
lines of inline JavaScript); then nbconvert's HTML exporter writes the page. The math in the
prose is turned into MathML while building (``latex2mathml``), which browsers draw natively:
the pages load no script, font or style from anywhere, so ``DIR`` works from plain files,
offline, or on any static host (GitHub Pages: ``DIR/.nojekyll`` is written too).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from . import colab, static_slider

CHECKOUT_LESSONS = Path(__file__).resolve().parents[1] / "notebooks"
_LESSON = re.compile(r"^\d\d_.*\.ipynb$")
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)  # fenced blocks and code spans keep their $
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$", re.S)
_HOLDER = "MATHXHOLDER{}X"
_HOLDER_RE = re.compile(r"MATHXHOLDER(\d+)X")

# nbconvert's "lab" page without the scripts it would fetch from a CDN (require.js, MathJax,
# mermaid, the widget manager), with a link bar above and below each lesson
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style>nav.course-nav{font-family:sans-serif;padding:0.6em 1em;display:flex;gap:1.5em;
flex-wrap:wrap}math[display=block]{margin:0.6em 0}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.course_nav }}{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.course_nav }}{{ super() }}{%- endblock body_footer -%}
"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Guidance Lab</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.5}}
li{{margin:0.4em 0}}</style></head>
<body><h1>Guidance Lab</h1>
<p>How a diffusion model is steered towards a label: explicit conditioning, classifier guidance and
classifier-free guidance, first on 2-D mixtures whose exact answers are known, then on MNIST.
These pages are the lessons as they ran; the sliders work in the page, without Python.
To change the code and do the exercises, run the lessons in Jupyter (see the project's README).</p>
<ol start="0">
{items}
</ol>
<p><small>Built {date} from {source} in {seconds:.0f} s.</small></p>
</body></html>
"""


class SiteError(Exception):
    """A usage error: the command prints its message as one line, without a traceback."""


def find_lessons(source: Path, only: list[str] | None = None) -> list[Path]:
    """The lessons ``NN_*.ipynb`` of ``source``, in order; ``only`` keeps those whose number
    (``"03"``) or file stem is listed."""
    if not source.is_dir():
        raise SiteError(f"--source {source} is not a folder (in a checkout: notebooks/ or instructor/lessons/)")
    lessons = sorted(p for p in source.iterdir() if _LESSON.match(p.name))
    if not lessons:
        raise SiteError(f"--source {source} holds no lesson NN_*.ipynb")
    if only:
        wanted = set(only)
        unknown = wanted - {p.name[:2] for p in lessons} - {p.stem for p in lessons}
        if unknown:
            raise SiteError(f"--lessons {' '.join(sorted(unknown))}: not in {source} "
                            f"(there: {' '.join(p.name[:2] for p in lessons)})")
        lessons = [p for p in lessons if p.name[:2] in wanted or p.stem in wanted]
    return lessons


def math_to_mathml(markdown: str) -> tuple[str, list[str]]:
    """``markdown`` with every ``$...$`` and ``$$...$$`` outside code replaced by a placeholder,
    and the MathML of each (inline or display). TeX that does not convert is kept as code."""
    from latex2mathml.converter import convert

    pieces: list[str] = []

    def one(match: re.Match) -> str:
        display = match.group(1) is not None
        tex = (match.group(1) if display else match.group(2)).strip()
        try:
            pieces.append(convert(tex, display="block" if display else "inline"))
        except Exception:  # noqa: BLE001 - latex2mathml raises many kinds; the page shows the TeX instead
            pieces.append(f"<code>{html.escape(tex)}</code>")
        return _HOLDER.format(len(pieces) - 1)

    parts = _CODE.split(markdown)
    out = [part if i % 2 else _MATH.sub(one, part) for i, part in enumerate(parts)]
    return "".join(out), pieces


def _put_math(page: str, pieces: list[str]) -> str:
    # a heading's id and anchor carry its text: drop placeholders inside attribute values first
    page = re.sub(r'="[^"]*"', lambda m: _HOLDER_RE.sub("", m.group(0)), page)
    return _HOLDER_RE.sub(lambda m: pieces[int(m.group(1))], page)


def execute(path: Path, timeout: float = 900):
    """Run the lesson at ``path`` top to bottom in a fresh kernel, in a temporary folder, with
    static sliders; return the executed notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.source.startswith(colab.MARKER))]
    old = os.environ.get(static_slider.ENV)
    os.environ[static_slider.ENV] = "1"  # the kernel inherits it
    try:
        with tempfile.TemporaryDirectory(prefix="course-site-") as folder:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": folder}}).execute()
    except CellExecutionError as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the traceback's colours
        last = [line for line in text.splitlines() if line.strip()][-1:]
        raise SiteError(f"{path.name}: a cell failed: {last[0] if last else error}") from None
    finally:
        if old is None:
            os.environ.pop(static_slider.ENV, None)
        else:
            os.environ[static_slider.ENV] = old
    return nb


def title_of(nb, fallback: str) -> str:
    """The lesson's first Markdown heading, as plain text."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return re.sub(r"[`*$\\]", "", match.group(1)).strip()
    return fallback


def to_html(nb, name: str, nav: str) -> str:
    """The executed notebook as one self-contained page (figures inline, math as MathML)."""
    import copy

    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    pieces: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            source, found = math_to_mathml(cell.source)
            cell.source = _HOLDER_RE.sub(lambda m: _HOLDER.format(int(m.group(1)) + len(pieces)), source)
            pieces += found
    exporter = HTMLExporter(template_name="lab", template_file="site.html.j2",
                            extra_loaders=[DictLoader({"site.html.j2": _TEMPLATE})])
    page, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}, "course_nav": nav})
    return _put_math(page, pieces)


def _nav(pages: list[tuple[str, str]], i: int) -> str:
    links = ['<a href="index.html">All lessons</a>']
    if i > 0:
        links.append(f'<a href="{pages[i - 1][0]}">&larr; {html.escape(pages[i - 1][1])}</a>')
    if i + 1 < len(pages):
        links.append(f'<a href="{pages[i + 1][0]}">{html.escape(pages[i + 1][1])} &rarr;</a>')
    return f'<nav class="course-nav">{" ".join(links)}</nav>'


def build(out: Path, source: Path = CHECKOUT_LESSONS, lessons: list[str] | None = None, timeout: float = 900,
          log=print) -> list[Path]:
    """Execute the lessons of ``source`` and write ``out/index.html`` and one page per lesson;
    return the pages written (index first)."""
    start = time.monotonic()
    paths = find_lessons(source, lessons)
    try:
        import latex2mathml  # noqa: F401
        import nbclient  # noqa: F401
        import nbconvert  # noqa: F401
    except ImportError as error:
        raise SiteError(f"the site build needs {error.name}: python -m pip install nbclient nbconvert latex2mathml")
    out.mkdir(parents=True, exist_ok=True)
    import nbformat

    pages = [(f"{path.stem}.html", title_of(nbformat.read(path, as_version=4), path.stem)) for path in paths]
    written: list[Path] = []
    try:  # each page is written as soon as its lesson ran: a failure keeps the pages before it
        for i, path in enumerate(paths):
            t0 = time.monotonic()
            nb = execute(path, timeout)
            target = out / pages[i][0]
            target.write_text(to_html(nb, pages[i][1], _nav(pages, i)), encoding="utf-8")
            written.append(target)
            log(f"executed {path.name} in {time.monotonic() - t0:.0f} s: {target}")
    finally:
        items = "\n".join(f'<li><a href="{href}">{html.escape(title)}</a></li>' for href, title in pages[:len(written)])
        index = out / "index.html"
        index.write_text(_INDEX.format(items=items, date=time.strftime("%Y-%m-%d"), source=html.escape(source.name),
                                       seconds=time.monotonic() - start), encoding="utf-8")
        (out / ".nojekyll").write_text("")
    log(f"wrote {len(written)} lesson pages and index.html to {out} in {time.monotonic() - start:.0f} s")
    return [index] + written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.website",
                                     description="Build the course site: every lesson as a page with working sliders.")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="execute the lessons and write the pages to DIR")
    b.add_argument("dir", type=Path, metavar="DIR", help="where the pages go (created if missing)")
    b.add_argument("--source", type=Path, default=CHECKOUT_LESSONS,
                   help="folder of lessons NN_*.ipynb (default: the checkout's notebooks/, the student edition)")
    b.add_argument("--lessons", nargs="+", metavar="NN", help="only these lessons, by number (00 03) or file stem")
    b.add_argument("--timeout", type=float, default=900, help="seconds one cell may run (default 900)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    try:
        build(args.dir, args.source, args.lessons, args.timeout)
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
