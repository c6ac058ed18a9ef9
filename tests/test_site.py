"""The course site (course_lib.website, course_lib.static_slider): pages built from executed
lessons, sliders that move without a kernel, nothing fetched from the network.

The browser test builds a subset of the lessons (lesson 03 has both kinds of slider; about a
minute and a half on the 2-core machine) and opens it in headless Chromium with every request
that is not a local file blocked and recorded. ``COURSE_LIB_SITE_LESSONS="00 03 05"`` builds
others; ``COURSE_LIB_SITE_DIR=DIR`` checks a site already built by
``python -m course_lib.website build DIR`` (the whole course) instead of building one.

Needs Debian's ``chromium`` at ``/usr/bin/chromium`` and the ``playwright`` package (never
``playwright install``); skipped without them unless ``GUIDANCE_LAB_REQUIRE_BROWSER=1``."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import static_slider, website, widgets

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
LOCAL = ("file:", "data:", "blob:", "about:")
CDNS = ("cdn", "unpkg", "jsdelivr", "cloudflare", "googleapis", "mathjax")


def _source() -> Path:
    """The student edition once generated, else the instructor sources."""
    student = ROOT / "notebooks"
    return student if any(student.glob("[0-9][0-9]_*.ipynb")) else ROOT / "instructor" / "lessons"


def _render(w: float, seed: int = 0) -> dict[str, torch.Tensor]:
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(seed))
    return {"a": x * (1 + w / 4), "b": x + w}


# ---- the static slider: no browser needed ---------------------------------------------------


def test_an_explorer_in_a_site_build_is_a_static_slider_holding_every_frame(monkeypatch):
    monkeypatch.setenv(static_slider.ENV, "1")
    explorer = widgets.ScatterExplorer(_render, symbol="w", value_range=(-1.0, 1.0, 0.5), value=0.0,
                                       titles={"a": "A", "b": "B"})
    slider = explorer.widget()
    assert isinstance(slider, static_slider.StaticSlider)
    assert len(slider.frames) == len(explorer.values) == 5 and len(set(slider.frames)) == 5
    assert slider.start == 2 and slider.labels[2] == "0" and slider.readouts[2].startswith("w = 0.00")
    assert explorer.value == 0.0  # shows its starting value again
    bundle = slider._repr_mimebundle_()
    assert bundle["image/png"] == slider.frames[2]
    page = bundle["text/html"]
    assert 'type="range" min="0" max="4"' in page and "course-lib-ScatterExplorer" in page
    assert 'src="data:image/png;base64,' in page and not re.search(r'src="(?!data:)', page), "no fetched image"
    assert not re.search(r"<script[^>]*\bsrc=", page), "no script loaded from anywhere"


def test_outside_a_site_build_the_widget_is_the_ipywidgets_one(monkeypatch):
    monkeypatch.delenv(static_slider.ENV, raising=False)
    explorer = widgets.ScatterExplorer(_render, symbol="w", value_range=(0.0, 1.0, 0.5), value=0.0,
                                       titles={"a": "A", "b": "B"}, precompute=False)
    assert not isinstance(explorer.widget(), static_slider.StaticSlider)


def test_static_slider_escapes_its_text_and_checks_its_frames():
    png = widgets.ScatterExplorer(_render, symbol="w", value_range=(0.0, 1.0, 1.0), value=0.0,
                                  titles={"a": "A", "b": "B"}, precompute=False).png
    page = static_slider.StaticSlider([png], ["</script><b>"], ["a < b & </script>"], symbol="<w>")._repr_html_()
    markup = page.split('<script type="application/json"')[0]
    assert "<b>" not in markup and "&lt;w&gt;" in markup  # text is escaped in the markup
    assert page.count("</script>") == 2  # the JSON and the code: nothing in the JSON closes its script early
    with pytest.raises(ValueError, match="one length"):
        static_slider.StaticSlider([png], ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="PNG"):
        static_slider.StaticSlider([b"GIF89a"], ["a"], ["x"])
    with pytest.raises(ValueError, match="start"):
        static_slider.StaticSlider([png], ["a"], ["x"], start=1)
    small = static_slider.compact_png(png)
    assert small.startswith(b"\x89PNG") and len(small) < len(png)


def test_a_switch_between_explorers_becomes_one_static_slider_per_choice():
    png = widgets.ScatterExplorer(_render, symbol="w", value_range=(0.0, 1.0, 1.0), value=0.0,
                                  titles={"a": "A", "b": "B"}, precompute=False).png
    parts = {"none": static_slider.StaticSlider([png, png], ["0", "1"], ["r0", "r1"], symbol="w"),
             "<clip>": static_slider.StaticSlider([png], ["0"], ["r0"], symbol="w")}
    page = static_slider.StaticStack(parts, label="fix")._repr_html_()
    assert page.count('type="range"') == 2 and "fix: none" in page and "fix: &lt;clip&gt;" in page
    assert static_slider.StaticStack(parts)._repr_mimebundle_()["image/png"] == parts["none"].frames[0]
    with pytest.raises(ValueError, match="StaticSlider"):
        static_slider.StaticStack({"a": png})


def test_math_becomes_mathml_outside_code_only():
    text, pieces = website.math_to_mathml("CFG $\\tilde\\epsilon = (1 + w)\\epsilon$ costs `$HOME` and\n"
                                          "$$p(x \\mid y)$$\n```\nprint('$x$')\n```\n$5 and $6")
    assert len(pieces) == 2 and "`$HOME`" in text and "print('$x$')" in text
    assert 'display="inline"' in pieces[0] and 'display="block"' in pieces[1]
    assert "$5 and $6" in text  # prices are not math


def test_site_command_misuse_is_one_line_naming_the_argument(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "course_lib.website", *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)

    for args, names in [(["build", "out", "--source", str(tmp_path / "nowhere")], "--source"),
                        (["build", "out", "--source", str(tmp_path)], "--source"),
                        (["build", "out", "--source", str(ROOT / "instructor" / "lessons"), "--lessons", "42"],
                         "--lessons 42"),
                        (["build", "out", "--timeout", "-1"], "--timeout")]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and names in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # argparse adds its usage line
    assert not (tmp_path / "out").exists()


# ---- the site in a browser ------------------------------------------------------------------


def _sync_playwright():
    missing = [] if CHROMIUM.exists() else [f"{CHROMIUM} (Debian package chromium)"]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package")
    if missing:
        message = "site browser test needs " + " and ".join(missing)
        if os.environ.get("GUIDANCE_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("COURSE_LIB_SITE_DIR")
    if built:
        return Path(built)
    out = tmp_path_factory.mktemp("site")
    lessons = os.environ.get("COURSE_LIB_SITE_LESSONS", "03").split()
    website.build(out, _source(), lessons)
    return out


def test_printed_output_shows_no_raw_latex(site):
    """What the lessons print (stream outputs, not figures or prose) is read as plain text:
    no ``$p(x \\mid y)$``."""
    tex = re.compile(r"\$[^$\n]*[a-zA-Z\\][^$\n]*\$|\\(mid|gamma|epsilon|nabla|tilde|varnothing)\b")
    found = []
    for path in sorted(site.glob("[0-9][0-9]_*.html")):
        page = path.read_text(encoding="utf-8")
        for block in re.findall(r'<div class="jp-RenderedText[^"]*"[^>]*>\s*<pre>(.*?)</pre>', page, re.S):
            text = html.unescape(re.sub(r"<[^>]+>", "", block))
            found += [f"{path.stem}: {line.strip()[:120]}" for line in text.splitlines() if tex.search(line)]
    assert not found, "\n".join(found)


def test_the_site_renders_offline_and_every_slider_moves_its_image(site):
    sync_playwright = _sync_playwright()
    pages = sorted(p for p in site.glob("[0-9][0-9]_*.html"))
    assert pages, f"no lesson page in {site}"
    index = (site / "index.html").read_text()
    assert all(f'href="{p.name}"' in index for p in pages)
    attempted, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 900})

            def route(r):
                if r.request.url.startswith(LOCAL):
                    r.continue_()
                else:
                    attempted.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((site / "index.html").as_uri())
            assert page.locator("a[href$='.html']").count() >= len(pages)
            moved = 0
            for path in pages:
                page.goto(path.as_uri())
                assert page.locator(".jp-Cell").count() > 5, path.name
                assert page.locator(".jp-OutputArea-output img").count() >= 1, f"{path.name}: no figure"
                assert page.locator("math").count() >= 1, f"{path.name}: no math"
                assert "MATHXHOLDER" not in page.content()
                sliders = page.locator(".course-lib-static-slider")
                for i in range(sliders.count()):
                    box = sliders.nth(i)
                    box.scroll_into_view_if_needed()
                    handle, image, readout = box.locator("input.csl-range"), box.locator("img.csl-image"), \
                        box.locator("output.csl-readout")
                    before = (image.get_attribute("src"), readout.text_content())
                    at_end = handle.get_attribute("value") == handle.get_attribute("max")
                    handle.focus()
                    page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
                    after = (image.get_attribute("src"), readout.text_content())
                    assert after[0] != before[0], f"{path.name} slider {i}: the image did not change"
                    assert after[1] != before[1], f"{path.name} slider {i}: the readout did not change"
                    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", image.element_handle())
                    print(f"{path.name} slider {i}: {before[1]!r} -> {after[1]!r}")
                    moved += 1
            assert moved >= 1 or os.environ.get("COURSE_LIB_SITE_LESSONS"), "no slider on the pages built"
        finally:
            browser.close()
    assert not errors, errors
    assert not attempted, f"the site asked the network for {attempted[:5]}"
    assert not any(c in u for u in attempted for c in CDNS)
