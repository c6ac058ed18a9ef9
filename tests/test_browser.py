"""The sliders in a real browser: JupyterLab in headless Chromium, driven by Playwright.

The other widget tests drive the ipywidgets objects directly; this one checks what a
student sees: the explorer renders as a live widget (not its static fallback picture),
and a slider move reaches the kernel and comes back as a new readout and a new image.

Needs Debian's ``chromium`` at ``/usr/bin/chromium`` and the ``playwright`` package
(never ``playwright install``). Without them the test is skipped, unless
``GUIDANCE_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where it fails instead."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "guidance-lab-test"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

EXPLORER_CELL = """\
from course_lib import pretrained, widgets
p = pretrained.load("toy_cfg")
render = widgets.cfg_render_2d(p.model, p.meta["mixture"], p.schedule, 0, n=500, steps=10)
explorer = widgets.ScatterExplorer(render, symbol="w", value_range=(-1.0, 4.0, 0.5), value=0.0,
                                   titles={"learned": "learned model", "exact": "exact denoiser"})
explorer.widget()"""


def _sync_playwright():
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("GUIDANCE_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port, serving a folder with one explorer notebook."""
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(EXPLORER_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "explorer.ipynb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(root / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                               f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {root / 'server.log'}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_slider_moves_update_the_picture_in_jupyterlab(lab):
    sync_playwright = _sync_playwright()
    url, root = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/explorer.ipynb?token={TOKEN}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
            page.click("text=Run >> nth=0")
            page.click("text=Run All Cells")
            output = page.locator(".jp-OutputArea-output").first
            image = output.locator("img.widget-image")
            image.wait_for(timeout=180_000)
            # the live widget, not the image/png fallback meant for headless runs and static viewers
            assert output.locator(".jp-RenderedImage").count() == 0
            readout = output.locator(".widget-label", has_text="γ = 1 + w")
            assert readout.inner_text().startswith("w = 0.00")
            first = image.get_attribute("src")

            page.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")                      # one step of 0.5
            page.wait_for_function("src => document.querySelector('img.widget-image').src !== src", arg=first,
                                   timeout=60_000)
            assert readout.inner_text().startswith("w = 0.50")
            page.screenshot(path=str(root / "after_move.png"))
        finally:
            browser.close()
