"""Plot helpers: the right artists, composable with an existing Axes, strict about shapes."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from course_lib import plots, sample_metrics
from course_lib.diffusion import make_schedule
from course_lib.toy import anisotropic

EXTENT = (-4.0, 4.0, -4.0, 4.0)


@pytest.fixture(autouse=True)
def _headless_and_closed():
    """Draw with Agg (no window, no display needed) and leave no figure open."""
    plt.switch_backend("Agg")
    plt.close("all")
    yield
    plt.close("all")


@pytest.fixture
def ax() -> Axes:
    return plt.subplots()[1]


def _legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _no_new_figure(draw) -> None:
    """``draw()`` must not open a figure."""
    before = plt.get_fignums()
    draw()
    assert plt.get_fignums() == before


def test_set_style_and_class_colors():
    with matplotlib.rc_context():  # leave the global style as other tests expect it
        plots.set_style()
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert plots.class_colors(3) == plots.PALETTE[:3]
    assert plots.class_colors(3) == plots.class_colors(5)[:3]  # class k keeps its colour
    many = plots.class_colors(12)
    assert len(many) == 12 and len(set(many)) == 12
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="K"):
            plots.class_colors(bad)


def test_subplots_grid_hides_unused_cells():
    fig, axes = plots.subplots_grid(5, ncols=3)
    assert len(axes) == 5 and len(fig.axes) == 6
    assert sum(a.get_visible() for a in fig.axes) == 5
    _, one = plots.subplots_grid(1, ncols=4)
    assert len(one) == 1
    with pytest.raises(ValueError, match="n and ncols"):
        plots.subplots_grid(0)


def test_grid_points():
    pts = plots.grid_points(EXTENT, 5)
    assert pts.shape == (25, 2)
    assert pts.min().item() == -4.0 and pts.max().item() == 4.0
    with pytest.raises(ValueError, match="extent"):
        plots.grid_points((1.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="num"):
        plots.grid_points(EXTENT, 1)


def test_density_contours_mixture_and_function(ax):
    mix = anisotropic()
    _no_new_figure(lambda: plots.density_contours(ax, mix.noised(0.5), EXTENT, label="exact", title="t"))
    assert len(ax.collections) == 1
    assert len(ax.collections[0].get_paths()) == 4  # one level per mass
    assert _legend_texts(ax) == ["exact"]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "t"
    # a plain log-density function works the same; new axes when none is given
    out = plots.density_contours(None, lambda x: -0.5 * (x**2).sum(1), EXTENT, masses=(0.5, 0.9))
    assert isinstance(out, Axes) and out is not ax and len(out.collections) == 1


def test_density_contours_levels_enclose_their_mass():
    # a standard normal: the 50% highest-density region is the disc of radius sqrt(2 ln 2)
    ax = plots.density_contours(None, lambda x: -0.5 * (x**2).sum(1), EXTENT, masses=(0.5,), resolution=201)
    verts = np.concatenate([p.vertices for p in ax.collections[0].get_paths()])
    assert np.allclose(np.linalg.norm(verts, axis=1), np.sqrt(2 * np.log(2)), atol=0.05)


def test_density_contours_rejects_bad_input(ax):
    with pytest.raises(ValueError, match="masses"):
        plots.density_contours(ax, anisotropic(), EXTENT, masses=(0.5, 1.0))
    with pytest.raises(ValueError, match="extent"):
        plots.density_contours(ax, anisotropic(), (0, 1, 0))
    with pytest.raises(ValueError, match="density"):
        plots.density_contours(ax, 3.0, EXTENT)


def test_scatter_by_label(ax):
    x, y = anisotropic().sample(300, generator=torch.Generator().manual_seed(0))
    names = ["left", "right", "top"]
    _no_new_figure(lambda: plots.scatter_by_label(x, y, ax, class_names=names))
    assert len(ax.collections) == 3 and _legend_texts(ax) == names
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1  # legend outside the plane
    colors = [matplotlib.colors.to_hex(c.get_facecolor()[0], keep_alpha=False) for c in ax.collections]
    assert colors == plots.class_colors(3)
    unlabelled = plots.scatter_by_label(x, label="exact samples")
    assert len(unlabelled.collections) == 1 and _legend_texts(unlabelled) == ["exact samples"]
    assert unlabelled.get_xlabel() == r"$x_1$"


def test_scatter_by_label_rejects_bad_shapes(ax):
    x, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match=r"x must have shape \[n, 2\]"):
        plots.scatter_by_label(torch.zeros(10, 3), y, ax)
    with pytest.raises(ValueError, match="y"):
        plots.scatter_by_label(x, torch.zeros(9, dtype=torch.long), ax)
    with pytest.raises(ValueError, match="labels"):
        plots.scatter_by_label(x, y + 5, ax, class_names=["a", "b"])


def test_vector_field(ax):
    pts = plots.grid_points(EXTENT, 6)
    vec = -pts
    _no_new_figure(lambda: plots.vector_field(pts, vec, ax, normalize=True, color="black", label="score"))
    assert len(ax.collections) == 1 and _legend_texts(ax) == ["score"]
    quiver = ax.collections[0]
    assert np.allclose(np.hypot(quiver.U, quiver.V), 1.0)  # unit arrows
    by_magnitude = plots.vector_field(pts, vec, title="field")
    q = by_magnitude.collections[0]
    assert q.get_array() is not None and np.allclose(q.get_array(), vec.norm(dim=1).numpy())
    assert by_magnitude.get_title() == "field"


def test_vector_field_rejects_bad_shapes(ax):
    with pytest.raises(ValueError, match="points"):
        plots.vector_field(torch.zeros(5, 3), torch.zeros(5, 3), ax)
    with pytest.raises(ValueError, match="vectors"):
        plots.vector_field(torch.zeros(5, 2), torch.zeros(4, 2), ax)


def test_trajectories(ax):
    traj = torch.randn(11, 30, 2, generator=torch.Generator().manual_seed(0))
    _no_new_figure(lambda: plots.trajectories(traj, ax, max_paths=20, label="DDIM"))
    lines, starts, ends = ax.collections
    assert len(lines.get_segments()) == 20 and len(lines.get_segments()[0]) == 11
    assert np.allclose(starts.get_offsets(), traj[0, :20]) and np.allclose(ends.get_offsets(), traj[-1, :20])
    assert _legend_texts(ax) == ["DDIM", r"start $x_T$", r"end $x_0$"]
    strided = plots.trajectories(traj, stride=4, label=None)
    assert len(strided.collections[0].get_segments()[0]) == 4  # steps 0, 4, 8 and the last, 10
    assert np.allclose(strided.collections[2].get_offsets(), traj[-1, :50])
    with pytest.raises(ValueError, match="traj"):
        plots.trajectories(torch.zeros(11, 30), ax)
    with pytest.raises(ValueError, match="stride"):
        plots.trajectories(traj, ax, stride=0)
    with pytest.raises(ValueError, match="2 time steps"):
        plots.trajectories(torch.zeros(1, 30, 2), ax)


def test_loss_curve(ax):
    losses = list(np.linspace(1.0, 0.3, 500))
    _no_new_figure(lambda: plots.loss_curve(losses, ax, smooth=50))
    assert len(ax.lines) == 2 and len(_legend_texts(ax)) == 2
    assert ax.get_xlabel() == "training step" and ax.get_yscale() == "log"
    raw = plots.loss_curve(torch.tensor(losses), smooth=0, log_y=False)
    assert len(raw.lines) == 1 and raw.get_yscale() == "linear"
    with pytest.raises(ValueError, match="losses"):
        plots.loss_curve(np.zeros((5, 2)), ax)
    with pytest.raises(ValueError, match="smooth"):
        plots.loss_curve(losses, ax, smooth=-1)


def test_schedule_curves(ax):
    scheds = {"linear": make_schedule("linear", 100), "cosine": make_schedule("cosine", 100)}
    _no_new_figure(lambda: plots.schedule_curves(scheds, ax))
    assert len(ax.lines) == 4 and len(_legend_texts(ax)) == 4
    with pytest.raises(ValueError, match="schedules"):
        plots.schedule_curves({}, ax)


def test_image_grid(ax):
    images = torch.linspace(-1, 1, 10 * 28 * 28).reshape(10, 1, 28, 28)
    _no_new_figure(lambda: plots.image_grid(images, nrow=4, ax=ax, padding=2))
    (im,) = ax.images
    assert im.get_array().shape == (3 * 30 + 2, 4 * 30 + 2)
    assert im.get_array().min() >= 0 and im.get_array().max() <= 1
    assert ax.get_title() == "10 images"
    for bad in (torch.zeros(4, 28, 28), torch.zeros(4, 3, 28, 28)):
        with pytest.raises(ValueError, match="images"):
            plots.image_grid(bad, ax=ax)
    with pytest.raises(ValueError, match="nrow"):
        plots.image_grid(images, nrow=0, ax=ax)


def test_tile_images_places_each_image_in_its_cell():
    images = -torch.ones(5, 1, 3, 4)
    images[4] = 1.0                                   # the fifth image is white, the others black
    canvas = plots.tile_images(images, nrow=2, padding=1)
    assert canvas.shape == (3 * 4 + 1, 2 * 5 + 1)
    np.testing.assert_array_equal(canvas[1:4, 1:5], 0.0)           # image 0: row 0, column 0
    np.testing.assert_array_equal(canvas[9:12, 1:5], 1.0)          # image 4: row 2, column 0
    np.testing.assert_array_equal(canvas[9:12, 6:10], 1.0)         # the empty cell after it stays white
    np.testing.assert_array_equal(canvas[0, :], 1.0)               # gutter
    with pytest.raises(ValueError, match="padding"):
        plots.tile_images(images, padding=-1)


def test_ax_must_be_axes():
    with pytest.raises(ValueError, match="ax"):
        plots.scatter_by_label(torch.zeros(3, 2), ax="not an axes")


def test_plot_helpers_label_what_they_draw():
    images = torch.rand(22, 1, 28, 28) * 2 - 1
    ax = plots.digit_table(images, 11, col_labels=[*range(10), "∅"], row_labels=["a", "b"], title="t")
    texts = [t.get_text() for t in ax.texts]
    assert texts == [*map(str, range(10)), "∅", "a", "b"] and ax.get_title() == "t"
    with pytest.raises(ValueError, match="col_labels"):
        plots.digit_table(images, 11, col_labels=range(10))
    with pytest.raises(ValueError, match="row_labels"):
        plots.digit_table(images, 11, row_labels=["a"])
    confusion = sample_metrics.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 2)
    ax = plots.plot_confusion(confusion, title="c", fontsize=9)
    assert [t.get_text() for t in ax.texts] == ["50", "50", "100", "100"]
    assert all(t.get_fontsize() == 9 for t in ax.texts)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "∅"] and ax.get_xlabel() == "judged as"
    with pytest.raises(ValueError, match="confusion"):
        plots.plot_confusion(torch.zeros(4, 2))
    plt.close("all")


def test_tile_matches_image_grid():
    images = torch.rand(13, 1, 28, 28) * 2 - 1
    ax = plots.image_grid(images, nrow=10)
    np.testing.assert_allclose(plots.tile_images(images, 10), ax.images[0].get_array())
    plt.close(ax.figure)


def test_plot_sweep_draws_the_metric_against_the_knob():
    rows = [{"w": 0.0, "gamma": 1.0, "accuracy": 0.5}, {"w": 2.0, "gamma": 3.0, "accuracy": 0.9}]
    ax = plots.plot_sweep(rows, "accuracy", reference=0.95, label="cfg", title="t")
    line = ax.lines[0]
    assert list(line.get_xdata()) == [0.0, 2.0] and list(line.get_ydata()) == [0.5, 0.9]
    assert ax.lines[1].get_ydata()[0] == 0.95 and "gamma" in ax.get_xlabel()
    ax = plots.plot_sweep(rows, "accuracy", x="gamma")
    assert list(ax.lines[0].get_xdata()) == [1.0, 3.0]
    with pytest.raises(ValueError, match="rows must"):
        plots.plot_sweep(rows, "frechet")
    plt.close("all")


def test_trajectories_take_one_colour_per_path(ax):
    traj = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(0))
    plots.trajectories(traj, ax, color=["red", "green", "blue"])
    assert len(ax.collections[0].get_colors()) == 3
    with pytest.raises(ValueError, match="color must"):
        plots.trajectories(traj, ax, color=["red", "green"])
