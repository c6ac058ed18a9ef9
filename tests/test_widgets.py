"""The slider explorers: pure render functions checked against exact answers, and
the shell's in-place updates."""

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import diffusion, guidance, toy, widgets  # noqa: E402

MIX = toy.anisotropic()
S = diffusion.make_schedule("linear", 1000)
ORACLE, ORACLE_CLF = toy.OracleDenoiser(MIX, S), toy.OracleClassifier(MIX, S)


def test_readout_shows_both_conventions():
    assert widgets.weight_readout("w", 2.0).startswith("w = 2.00  |  γ = 1 + w = 3.00")
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
                                       titles={"learned": "learned", "exact": "exact"})
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
    bundle = box._repr_mimebundle_()               # without a widget manager, the figure still shows
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == explorer.png
    with pytest.raises(ValueError, match="value must lie"):
        widgets.ScatterExplorer(render, symbol="w", value_range=(-1.0, 6.0, 0.25), value=7.0, titles={})
