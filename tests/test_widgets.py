"""The slider explorers: pure render functions checked against exact answers, and
the shell's in-place updates."""

import base64
import subprocess
import sys
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import diffusion, guidance, plots, toy, widgets  # noqa: E402
from course_lib.unet import ConditionalUNet  # noqa: E402

MIX = toy.anisotropic()
S = diffusion.make_schedule("linear", 1000)
ORACLE, ORACLE_CLF = toy.OracleDenoiser(MIX, S), toy.OracleClassifier(MIX, S)


def test_readout_shows_both_conventions():
    assert widgets.weight_readout("w", 2.0) == "w = 2.00  |  γ = 1 + w = 3.00  |  diffusers guidance_scale = 3.00"
    assert "no equivalent" in widgets.weight_readout("w", -0.5)  # diffusers uses the conditional model at scale <= 1
    assert "≤ 1" in widgets.weight_readout("w", 0.0)
    assert "w = γ − 1 = -1.00" in widgets.weight_readout("gamma", 0.0)
    with pytest.raises(ValueError, match="symbol"):
        widgets.weight_readout("omega", 1.0)


def test_cfg_render_with_a_perfect_model_matches_the_exact_panel():
    render = widgets.cfg_render_2d(ORACLE, MIX, S, y=1, n=200, steps=10)
    out = render(2.0, 0)
    torch.testing.assert_close(out["learned"], out["exact"], atol=1e-4, rtol=1e-4)
    again = render(2.0, 0)
    torch.testing.assert_close(again["learned"], out["learned"])  # seeded: repeatable
    moved = render(0.0, 0)["exact"]
    assert (moved - out["exact"]).norm(dim=1).mean() > 0.05  # w moves the points
    direct = diffusion.sample(guidance.cfg(MIX.eps_fn(S, 1), MIX.eps_fn(S), 2.0), (200, 2), S, steps=10, eta=0.0,
                              x_T=torch.randn(200, 2, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(out["exact"], direct)


def test_classifier_guidance_render_with_perfect_parts_matches_exact():
    render = widgets.classifier_guidance_render_2d(ORACLE, ORACLE_CLF, MIX, S, y=2, n=100, steps=8)
    out = render(3.0, 1)
    torch.testing.assert_close(out["learned"], out["exact"], atol=1e-4, rtol=1e-4)


def test_render_rejects_bad_label_and_weight():
    with pytest.raises(ValueError, match="y must lie in 0..2"):
        widgets.cfg_render_2d(ORACLE, MIX, S, y=3)
    render = widgets.cfg_render_2d(ORACLE, MIX, S, y=0, n=10, steps=2)
    with pytest.raises(ValueError, match="w must"):
        render(float("nan"), 0)


def test_explorer_updates_artists_in_place():
    render = widgets.cfg_render_2d(ORACLE, MIX, S, y=0, n=50, steps=4)
    explorer = widgets.ScatterExplorer(render, symbol="w", value_range=(-1.0, 6.0, 0.25), value=0.0,
                                       titles={"learned": "learned", "exact": "exact"}, precompute=False)
    assert explorer.values == [-1.0 + 0.25 * i for i in range(29)]
    artists = dict(explorer.artists)
    before, png_before = artists["exact"].get_offsets().copy(), explorer.png
    seconds = explorer.update(3.0)
    assert explorer.png.startswith(b"\x89PNG") and explorer.png != png_before
    assert explorer.artists == artists  # same artist objects
    assert seconds > 0 and not (artists["exact"].get_offsets() == before).all()
    torch.testing.assert_close(torch.as_tensor(np.asarray(artists["exact"].get_offsets()), dtype=torch.float32),
                               render(3.0, 0)["exact"])
    assert explorer.suptitle.get_text().startswith("w = 3.00")
    box = explorer.widget()
    slider = box.children[0].children[0]
    slider.value = 1.5
    assert explorer.value == 1.5 and "1.5" in box.children[0].children[1].value
    assert box.children[1].value == explorer.png  # the image widget shows the new frame
    assert "course-lib-ScatterExplorer" in box._dom_classes  # what the browser test looks for
    bundle = box._repr_mimebundle_()               # without a widget manager, the figure still shows
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == explorer.png
    explorer.update(2.3)  # between two slider values: rendered on the spot
    torch.testing.assert_close(torch.as_tensor(np.asarray(artists["exact"].get_offsets()), dtype=torch.float32),
                               render(2.3, 0)["exact"])
    with pytest.raises(ValueError, match="value must be a finite number in"):
        widgets.ScatterExplorer(render, symbol="w", value_range=(-1.0, 6.0, 0.25), value=7.0, titles={})
    with pytest.raises(ValueError, match="value_range's step must be a finite number > 0"):
        widgets.ScatterExplorer(render, symbol="w", value_range=(-1.0, 6.0, 0.0), value=0.0, titles={})


def test_precomputed_frames_equal_frames_drawn_on_the_spot():
    render = widgets.cfg_render_2d(ORACLE, MIX, S, y=0, n=50, steps=2)
    kwargs = dict(symbol="w", value_range=(-1.0, 1.0, 0.5), value=0.0, titles={}, extent=(-5, 5, -4, 4))
    background = widgets.ScatterExplorer(render, **kwargs)
    assert background.wait(timeout=60)
    spot = widgets.ScatterExplorer(render, **kwargs, precompute=False)
    for v in [1.0, -1.0, 0.5]:
        assert background.cache[(v, 0)].png is not None  # drawn by the background worker
        assert spot.cache.get((v, 0)) is None
        background.update(v)
        spot.update(v)
        assert background.png == spot.png  # byte for byte: the worker's figure is the shown one's twin
        torch.testing.assert_close(torch.as_tensor(np.asarray(background.artists["exact"].get_offsets())),
                                   torch.as_tensor(np.asarray(spot.artists["exact"].get_offsets())))
    assert background.axes["learned"].get_xlim() == (-5.0, 5.0)


def test_a_knob_that_is_not_a_guidance_weight_brings_its_own_readout():
    render = widgets.cfg_render_2d(ORACLE, MIX, S, y=0, n=20, steps=2)
    explorer = widgets.ScatterExplorer(lambda centre, seed: render(1.0, seed), symbol="window",
                                       value_range=(150.0, 850.0, 50.0), value=450.0, titles={}, precompute=False,
                                       readout=lambda centre: f"window = [{centre - 150:g}, {centre + 150:g}]")
    assert explorer.suptitle.get_text() == "window = [300, 600]"
    box = explorer.widget()
    (slider, readout), _ = box.children[0].children, box.children[1]
    assert slider.description == "window" and readout.value == "window = [300, 600]"
    slider.value = 500.0
    assert readout.value == explorer.suptitle.get_text() == "window = [350, 650]"


def _counting_render(calls, delay=0.0):
    def render(w, seed=0):
        calls.append((w, seed))
        time.sleep(delay)
        return torch.full((20, 1, 28, 28), float(np.tanh(w / 3))) + 0.01 * seed
    return render


def test_explorer_updates_in_place_and_never_shows_a_stale_grid():
    calls = []
    render = _counting_render(calls)
    explorer = widgets.DigitGridExplorer(render, [-1.0, 0.0, 1.0, 2.0], 0.0, precompute=False)
    image, title = explorer.image, explorer.title
    assert calls == [(0.0, 0)]
    png = explorer.png
    seconds = explorer.update(2.0)  # not computed yet: rendered now
    assert seconds > 0 and explorer.image is image and explorer.title is title and explorer.png != png
    np.testing.assert_allclose(image.get_array(), plots.tile_images(render(2.0, 0), 10))
    assert title.get_text().startswith("w = 2.00  |  γ = 1 + w = 3.00")
    n = len(calls)
    explorer.update(0.0)  # cached
    assert len(calls) == n
    np.testing.assert_allclose(image.get_array(), plots.tile_images(render(0.0, 0), 10))
    explorer.update(1.0, seed=3)  # a new seed is a new grid
    np.testing.assert_allclose(image.get_array(), plots.tile_images(render(1.0, 3), 10))


def test_explorer_precomputes_and_its_cache_equals_a_fresh_render():
    torch.manual_seed(0)
    render = widgets.cfg_render(ConditionalUNet(base_channels=8, emb_dim=8).eval(), m=1, steps=2, schedule=S)
    values = [-1.0, 0.0, 1.5, 3.0]
    explorer = widgets.DigitGridExplorer(render, values, 1.5, symbol="w")
    assert explorer.wait(timeout=60)
    for v in values:
        assert torch.equal(explorer.cache[(v, 0)].data, render(v, 0))
    explorer.update(3.0)
    np.testing.assert_allclose(explorer.image.get_array(), plots.tile_images(render(3.0, 0), 10))


def test_explorer_move_during_precompute_shows_the_requested_grid():
    calls = []
    render = _counting_render(calls, delay=0.05)
    values = [float(v) for v in range(8)]
    explorer = widgets.DigitGridExplorer(render, values, 0.0)
    explorer.update(7.0)  # the background thread reaches 7 last
    np.testing.assert_allclose(explorer.image.get_array(), plots.tile_images(render(7.0, 0), 10))
    assert explorer.wait(timeout=10)
    keys = [c for c in calls if c != (7.0, 0)]
    assert len(keys) == len(set(keys))  # nothing rendered twice by the explorer
    explorer.update(3.0, seed=1)  # a new seed: precomputed again, for that seed
    assert explorer.wait(timeout=10) and all((v, 1) in explorer.cache for v in values)


def test_precompute_takes_the_nearest_steps_first_right_before_left():
    calls = []
    explorer = widgets.DigitGridExplorer(_counting_render(calls), [0.0, 0.5, 1.0, 3.0, 9.0], 1.0)
    assert explorer.wait(timeout=10)
    assert [w for w, _ in calls] == [1.0, 3.0, 0.5, 9.0, 0.0]  # by slider steps, not by distance in w


def test_background_errors_surface_and_stop_ends_the_precompute():
    def render(w, seed=0):
        if w == 2.0:
            raise RuntimeError("render failed at 2")
        return torch.zeros(10, 1, 28, 28)

    explorer = widgets.DigitGridExplorer(render, [0.0, 1.0, 2.0], 0.0)
    with pytest.raises(RuntimeError, match="render failed at 2"):
        explorer.wait(timeout=10)
    with pytest.raises(RuntimeError, match="render failed at 2"):
        explorer.update(2.0)  # a move there renders on the spot and says why it fails
    slow = widgets.DigitGridExplorer(_counting_render([], delay=0.05), [float(v) for v in range(40)], 0.0)
    slow.stop()
    assert not slow.wait(timeout=10)  # stopped: returns at once, not every value drawn


def test_explorer_widget_wires_slider_to_update():
    render = _counting_render([])
    explorer = widgets.DigitGridExplorer(render, [-1.0, 0.0, 2.5], 0.0, precompute=False)
    box = explorer.widget()
    (slider, readout), image = box.children[0].children, box.children[1]
    assert list(slider.options) == [("-1", -1.0), ("0", 0.0), ("2.5", 2.5)]
    slider.value = 2.5
    assert explorer.value == 2.5 and readout.value.startswith("w = 2.50") and image.value == explorer.png
    assert base64.b64decode(box._repr_mimebundle_()["image/png"]) == explorer.png  # headless fallback
    np.testing.assert_allclose(explorer.image.get_array(), plots.tile_images(render(2.5, 0), 10))


def test_grid_explorer_rejects_bad_inputs():
    render = _counting_render([])
    with pytest.raises(ValueError, match="values must be"):
        widgets.DigitGridExplorer(render, [1.0, 0.0], 0.0, precompute=False)
    with pytest.raises(ValueError, match="value must be"):
        widgets.DigitGridExplorer(render, [0.0, 1.0], 2.0, precompute=False)
    explorer = widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, precompute=False)
    for bad in (float("inf"), 5.0, "1"):
        with pytest.raises(ValueError, match="value must be"):
            explorer.update(bad)
    with pytest.raises(ValueError, match="seed must"):
        explorer.update(1.0, seed=-2)
    with pytest.raises(ValueError, match="symbol"):
        widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, symbol="omega", precompute=False)
    with pytest.raises(ValueError, match="precompute must be True or False"):
        widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, precompute=1)
    with pytest.raises(ValueError, match="nrow must be an integer >= 1"):
        widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, nrow=0, precompute=False)
    with pytest.raises(ValueError, match="inches_per_pixel must be a finite number > 0"):
        widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, inches_per_pixel=0.0, precompute=False)


def test_grid_figure_is_sized_in_inches_per_pixel_of_the_tiled_grid():
    render = _counting_render([])
    height, width = plots.tile_images(render(0.0, 0), 5).shape
    explorer = widgets.DigitGridExplorer(render, [0.0, 1.0], 0.0, nrow=5, inches_per_pixel=0.01, precompute=False)
    np.testing.assert_allclose(explorer.fig.get_size_inches(), [0.01 * width + 0.2, 0.01 * height + 0.5])


def test_exit_while_precomputing_does_not_abort_the_process():
    """A daemon thread killed inside a torch kernel aborts the interpreter (exit code 134);
    the explorer's worker is joined at exit after the render in progress instead."""
    script = """
import torch
from course_lib import widgets

def render(value, seed=0):
    a = torch.randn(600, 600)
    for _ in range(10):  # long enough that exit comes while the worker is inside torch
        a = torch.tanh(a @ a / 600)
    return torch.zeros(10, 1, 28, 28) + a.mean()

widgets.DigitGridExplorer(render, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 0.0)
"""
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
