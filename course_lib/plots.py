"""Plot helpers shared by every lesson.

Each helper takes data and an optional matplotlib ``Axes``, draws on it (or on
a new figure when ``ax`` is None) and returns the axes. None calls
``plt.show()`` or reads a notebook's globals, so they run headless under the
Agg backend. :func:`set_style` sets the house style once per notebook, and
:func:`class_colors` gives every lesson the same colour for class ``k``.
Extents are ``(xmin, xmax, ymin, ymax)``, as in ``imshow``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from . import validate

# matplotlib's tab10: distinct, familiar, and readable by most colour-blind viewers for K <= 4.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def set_style() -> None:
    """The house style: readable fonts, light grid, no top/right spines, the class palette."""
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 120, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "legend.fontsize": 9, "legend.framealpha": 0.85, "axes.grid": True, "grid.alpha": 0.25,
        "axes.spines.top": False, "axes.spines.right": False, "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "image.cmap": "viridis"})


def class_colors(K: int) -> list[str]:
    """The colour of each class ``0..K-1``: the same in every lesson (tab10, then turbo for K > 10)."""
    validate.integer(K, "K", minimum=1)
    if K <= len(PALETTE):
        return PALETTE[:K]
    return [mpl.colors.to_hex(c) for c in mpl.colormaps["turbo"](np.linspace(0.05, 0.95, K))]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5.8, 4.2)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    elif not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _array(x, name: str, shape: str, ndim: int, last: int | None = None) -> np.ndarray:
    """``x`` as a float numpy array; ``ValueError`` unless it has ``ndim`` dims (and last dim ``last``)."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if a.ndim != ndim or (last is not None and a.shape[-1] != last) or a.shape[0] == 0:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(a.shape)}")
    return a


def _check_extent(extent: Sequence[float]) -> tuple[float, ...]:
    e = tuple(float(v) for v in extent)
    if len(e) != 4 or not np.isfinite(e).all() or e[0] >= e[1] or e[2] >= e[3]:
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {extent!r}")
    return e


def _legend(ax: Axes) -> None:
    """A legend right of the axes, so it never hides data, with opaque, readable markers."""
    leg = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    for handle in leg.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_sizes([20.0])
        handle.set_alpha(1.0)


def _label_plane(ax: Axes, title: str | None, extent: Sequence[float] | None = None) -> None:
    """Axis labels ``x_1``, ``x_2``, equal aspect, optional limits and title."""
    ax.set(xlabel=r"$x_1$", ylabel=r"$x_2$", aspect="equal")
    if extent is not None:
        e = _check_extent(extent)
        ax.set(xlim=e[:2], ylim=e[2:])
    if title is not None:
        ax.set_title(title)


def subplots_grid(n: int, ncols: int = 3, size: float = 3.2, height: float | None = None,
                  **kwargs) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels of ``size`` x ``height`` inches (square by default) in rows
    of ``ncols``; unused cells are hidden. Returns ``(fig, axes)``, ``axes`` a flat list of ``n``."""
    if not isinstance(n, int) or n < 1 or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"n and ncols must be positive integers, got n={n!r}, ncols={ncols!r}")
    ncols, nrows = min(ncols, n), -(-n // ncols)
    kwargs.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (height or size) * nrows), squeeze=False, **kwargs)
    flat = list(axes.flat)
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def grid_points(extent: Sequence[float], num: int = 20) -> torch.Tensor:
    """A ``num x num`` grid of points over ``extent``, shape ``[num * num, 2]`` (float64)."""
    e = _check_extent(extent)
    if not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an integer >= 2, got {num!r}")
    gx, gy = torch.meshgrid(torch.linspace(e[0], e[1], num, dtype=torch.float64),
                            torch.linspace(e[2], e[3], num, dtype=torch.float64), indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def density_contours(ax: Axes | None, density, extent: Sequence[float], *,
                     masses: Sequence[float] = (0.25, 0.5, 0.75, 0.95), resolution: int = 150,
                     color: str = "0.15", label: str | None = None, title: str | None = None,
                     linewidths: float = 1.0) -> Axes:
    """Exact density contours of ``density``: a ``GaussianMixture2D`` (anything with
    ``log_prob``) or a function ``log_prob_fn(x [n, 2]) -> [n]``.

    Each contour encloses the highest-density region holding a fraction of the
    mass given in ``masses`` (computed on the grid), so panels at different noise
    levels are comparable. ``label`` adds one legend entry for all the contours."""
    log_prob_fn: Callable = density.log_prob if hasattr(density, "log_prob") else density
    if not callable(log_prob_fn):
        raise ValueError("density must be a mixture with .log_prob or a function log_prob_fn(x) -> [n]")
    if not masses or not all(0 < m < 1 for m in masses):
        raise ValueError(f"masses must be fractions strictly between 0 and 1, got {masses!r}")
    ax = _axes(ax)
    pts = grid_points(extent, resolution)
    with torch.no_grad():
        logp = torch.as_tensor(log_prob_fn(pts)).double().reshape(resolution, resolution).numpy()
    p = np.exp(logp - logp.max())
    ordered = np.sort(p.ravel())[::-1]
    cum = np.cumsum(ordered) / ordered.sum()
    levels = sorted({float(ordered[min(np.searchsorted(cum, m), ordered.size - 1)]) for m in masses})
    e = _check_extent(extent)
    ax.contour(np.linspace(e[0], e[1], resolution), np.linspace(e[2], e[3], resolution), p,
               levels=levels, colors=color, linewidths=linewidths)
    if label is not None:
        ax.plot([], [], color=color, linewidth=linewidths, label=label)
        _legend(ax)
    _label_plane(ax, title, extent)
    return ax


def scatter_by_label(x, y=None, ax: Axes | None = None, *, class_names: Sequence[str] | None = None,
                     num_classes: int | None = None, s: float = 4.0, alpha: float = 0.5,
                     label: str = "samples", color: str | None = None, title: str | None = None,
                     extent: Sequence[float] | None = None, legend: bool = True) -> Axes:
    """Scatter 2-D points ``x [n, 2]``, one colour per class ``y [n]`` (legend of
    ``class_names``, default ``"class k"``), or one colour labelled ``label`` when ``y`` is None."""
    pts = _array(x, "x", "[n, 2]", 2, 2)
    ax = _axes(ax)
    if y is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color or "0.3", label=label, linewidths=0)
    else:
        labels = _array(y, "y", f"[{len(pts)}]", 1).astype(int)
        if labels.shape[0] != pts.shape[0] or labels.min() < 0:
            raise ValueError(f"y must hold one non-negative label per point ({len(pts)}), got shape {labels.shape}")
        K = num_classes or (len(class_names) if class_names else int(labels.max()) + 1)
        if labels.max() >= K or (class_names is not None and len(class_names) < K):
            raise ValueError(f"labels must lie in 0..{K - 1} and class_names must name each of them")
        names = list(class_names) if class_names is not None else [f"class {k}" for k in range(K)]
        for k, c in enumerate(class_colors(K)):  # every class gets its entry, so legends match across panels
            ax.scatter(*pts[labels == k].T, s=s, alpha=alpha, color=c, label=names[k], linewidths=0)
    if legend:
        _legend(ax)
    _label_plane(ax, title, extent)
    return ax


def vector_field(points, vectors, ax: Axes | None = None, *, normalize: bool = False,
                 color: str | None = None, cmap: str = "viridis", scale: float | None = None,
                 width: float = 0.004, label: str | None = None, title: str | None = None,
                 extent: Sequence[float] | None = None) -> Axes:
    """Arrows ``vectors [n, 2]`` at ``points [n, 2]`` (a quiver). ``normalize=True``
    draws unit arrows (direction only); ``color=None`` colours them by magnitude; ``scale``
    is data units per arrow unit (None: automatic), ``width`` the shaft width (fraction of the axes)."""
    p = _array(points, "points", "[n, 2]", 2, 2)
    v = _array(vectors, "vectors", f"[{len(p)}, 2]", 2, 2)
    if v.shape != p.shape:
        raise ValueError(f"vectors must have the shape of points {p.shape}, got {v.shape}")
    ax = _axes(ax)
    mag = np.linalg.norm(v, axis=1)
    if normalize:
        v = v / np.maximum(mag, 1e-12)[:, None]
    by_magnitude = [mag] if color is None else []
    ax.quiver(*p.T, *v.T, *by_magnitude, color=color, cmap=cmap, angles="xy", scale_units="xy", scale=scale,
              width=width, label=label)
    if label is not None:
        _legend(ax)
    _label_plane(ax, title, extent)
    return ax


def trajectories(traj, ax: Axes | None = None, *, max_paths: int = 50, stride: int = 1,
                 color: str | Sequence[str] = "#1f77b4", label: str | None = "paths", alpha: float = 0.6,
                 linewidth: float = 0.8, title: str | None = None,
                 extent: Sequence[float] | None = None) -> Axes:
    """Sampling paths ``traj [S+1, B, 2]`` (``traj[0]`` is ``x_T``, ``traj[-1]`` is ``x0``):
    one line per sample (the first ``max_paths``) through every ``stride``-th step and the
    last, a hollow marker at the start and a filled one at the end. ``color``: one colour for
    every path, or a sequence of one colour per drawn path."""
    a = _array(traj, "traj", "[S+1, B, 2]", 3, 2)
    if a.shape[0] < 2:
        raise ValueError(f"traj must hold at least 2 time steps, got {a.shape[0]}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    keep = sorted(set(range(0, a.shape[0], stride)) | {a.shape[0] - 1})
    a = a[keep, :max_paths]
    if not isinstance(color, str):
        color = list(color)
        if len(color) != a.shape[1]:
            raise ValueError(f"color must be one colour or one per drawn path ({a.shape[1]}), got {len(color)}")
    ax = _axes(ax)
    ax.add_collection(LineCollection(np.transpose(a, (1, 0, 2)), colors=color, alpha=alpha,
                                     linewidths=linewidth, label=label))
    ax.scatter(a[0, :, 0], a[0, :, 1], s=18, facecolors="none", edgecolors="0.2", linewidths=0.8,
               label=r"start $x_T$", zorder=3)
    ax.scatter(a[-1, :, 0], a[-1, :, 1], s=14, color=color, edgecolors="black", linewidths=0.4,
               label=r"end $x_0$", zorder=4)
    ax.autoscale_view()
    _legend(ax)
    _label_plane(ax, title, extent)
    return ax


def loss_curve(losses, ax: Axes | None = None, *, smooth: int = 100, label: str = "loss",
               log_y: bool = True, title: str | None = "training loss") -> Axes:
    """Per-step ``losses [steps]`` (light) and their moving average over ``smooth``
    steps (bold; ``smooth <= 1`` draws the raw curve only)."""
    y = _array(losses, "losses", "[steps]", 1)
    if not isinstance(smooth, int) or smooth < 0:
        raise ValueError(f"smooth must be a non-negative integer, got {smooth!r}")
    ax = _axes(ax, (6.0, 3.5))
    steps = np.arange(1, len(y) + 1)
    if smooth > 1 and len(y) >= smooth:
        ax.plot(steps, y, color="0.7", linewidth=0.6, label=f"{label} (per step)")
        avg = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(steps[smooth - 1:], avg, color=PALETTE[0], linewidth=1.8, label=f"{label} ({smooth}-step mean)")
    else:
        ax.plot(steps, y, color=PALETTE[0], linewidth=1.0, label=label)
    ax.set(xlabel="training step", ylabel=label, title=title, yscale="log" if log_y else "linear")
    ax.legend(loc="upper right")
    return ax


def schedule_curves(schedules: Mapping[str, object], ax: Axes | None = None, *,
                    title: str | None = "noise schedules") -> Axes:
    """``alpha_bar_t`` (solid) and ``sigma_t = sqrt(1 - alpha_bar_t)`` (dashed) against ``t``
    for each named :class:`course_lib.diffusion.Schedule`."""
    if not schedules:
        raise ValueError("schedules must map at least one name to a Schedule")
    ax = _axes(ax, (6.0, 3.5))
    for (name, s), c in zip(schedules.items(), class_colors(len(schedules))):
        t = np.arange(s.T)
        ax.plot(t, s.alpha_bars.numpy(), color=c, label=rf"{name}: $\bar\alpha_t$")
        ax.plot(t, s.sigmas.numpy(), color=c, linestyle="--", label=rf"{name}: $\sigma_t$")
    ax.set(xlabel="time step $t$", ylabel="value", title=title)
    ax.legend(loc="center right")
    return ax


def tile_images(images, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile grey images ``[B, 1, H, W]`` in ``[-1, 1]`` (MNIST's range) into one canvas
    ``[rows * (H + p) + p, cols * (W + p) + p]`` in ``[0, 1]`` with white gutters, ``nrow``
    per row: the pixels of :func:`image_grid`, for ``imshow`` and ``set_data``."""
    a = _array(images, "images", "[B, 1, H, W]", 4)
    if a.shape[1] != 1 or a.shape[0] < 1:
        raise ValueError(f"images must have shape [B, 1, H, W] with B >= 1, got {a.shape}")
    validate.integer(nrow, "nrow", minimum=1)
    validate.integer(padding, "padding", minimum=0)
    B, _, H, W = a.shape
    cols, rows, h, w = min(nrow, B), -(-B // nrow), H + padding, W + padding
    canvas = np.ones((rows * h + padding, cols * w + padding))  # white gutters between tiles
    for i, img in enumerate(np.clip((a[:, 0] + 1) / 2, 0, 1)):
        r, c = divmod(i, nrow)
        canvas[padding + r * h:(r + 1) * h, padding + c * w:(c + 1) * w] = img
    return canvas


def image_grid(images, nrow: int = 8, ax: Axes | None = None, *, padding: int = 2,
               title: str | None = None) -> Axes:
    """Tile grey images ``[B, 1, H, W]`` in ``[-1, 1]`` (MNIST's range), ``nrow`` per row."""
    canvas = tile_images(images, nrow, padding)
    B, cols = len(images), min(nrow, len(images))
    rows = -(-B // nrow)
    ax = _axes(ax, (0.6 * cols + 0.5, 0.6 * rows + 0.5))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"{B} images")
    return ax


# --------------------------------------------------------------------------- digits and sweeps

def plot_confusion(confusion: torch.Tensor, ax=None, *, title: str | None = None, null_name: str = "∅",
                   fontsize: float = 10):
    """Draw a confusion matrix (:func:`course_lib.sample_metrics.confusion_matrix`) as row shares: rows the label asked for (the last
    one, if present, the null label ``null_name``), columns the judge's verdict, each
    cell its share of the row in percent (``fontsize`` points). Returns the axes.

    Args:
        confusion: ``[K + 1, K]`` (or ``[K, K]``) counts, row ``K`` the null label."""
    if not isinstance(confusion, torch.Tensor) or confusion.ndim != 2 \
            or confusion.shape[0] not in (confusion.shape[1], confusion.shape[1] + 1):
        raise ValueError("confusion must be a [K + 1, K] (or [K, K]) matrix of counts")
    K = confusion.shape[1]
    counts = confusion.double()
    shares = (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * K + 1.5, 0.45 * confusion.shape[0] + 1.0), layout="constrained")
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
    for (r, c), v in np.ndenumerate(shares):
        if v >= 0.005:
            ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if v > 0.6 else "black")
    rows = [str(k) for k in range(K)] + ([null_name] if confusion.shape[0] > K else [])
    ax.set_xticks(range(K), [str(k) for k in range(K)])
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(length=0)
    ax.grid(False)
    ax.set(xlabel="judged as", ylabel="label asked for")
    if confusion.shape[0] > K:
        ax.axhline(K - 0.5, color="black", linewidth=1.0)
    if title is not None:
        ax.set_title(title)
    return ax


def digit_table(images: torch.Tensor, ncol: int, ax=None, *, col_labels: Sequence | None = None,
                row_labels: Sequence | None = None, title: str | None = None, padding: int = 2):
    """:func:`image_grid` of ``images [B, 1, H, W]``, ``ncol`` to a row,
    with a label above each column and, optionally, left of each row. Returns the axes."""
    validate.integer(ncol, "ncol", minimum=1)
    ax = image_grid(images, nrow=ncol, ax=ax, padding=padding, title="")
    B, _, H, W = images.shape
    nrows = -(-B // ncol)
    if col_labels is not None:
        col_labels = list(col_labels)
        if len(col_labels) != min(ncol, B):
            raise ValueError(f"col_labels must hold one label per column ({min(ncol, B)}), got {len(col_labels)}")
        for c, text in enumerate(col_labels):
            ax.text(padding + c * (W + padding) + (W - 1) / 2, -0.5, str(text), ha="center", va="bottom",
                    fontsize=9)
    if row_labels is not None:
        row_labels = list(row_labels)
        if len(row_labels) != nrows:
            raise ValueError(f"row_labels must hold one label per row ({nrows}), got {len(row_labels)}")
        for r, text in enumerate(row_labels):
            ax.text(-1.0, padding + r * (H + padding) + (H - 1) / 2, str(text), ha="right", va="center",
                    fontsize=8)
    if title is not None:
        ax.set_title(title, pad=14 if col_labels is not None else 6)
    return ax


def plot_sweep(rows: Sequence[dict], metric: str, ax=None, *, x: str = "w", label: str | None = None,
               reference: float | None = None, reference_label: str = "real digits", title: str | None = None,
               ylabel: str | None = None, **style):
    """``metric`` against the knob ``x`` (``"w"`` or ``"gamma"``) for sweep rows, one line;
    ``reference`` draws a dashed horizontal line (e.g. the real digits' value). Returns the axes."""
    if not rows or metric not in rows[0] or x not in rows[0]:
        raise ValueError(f"rows must be sweep rows holding {metric!r} and {x!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 3.4), layout="constrained")
    xs, ys = [r[x] for r in rows], [r[metric] for r in rows]
    style.setdefault("marker", "o")
    ax.plot(xs, ys, label=label, **style)
    if reference is not None:
        ax.axhline(reference, color="0.4", linestyle="--", linewidth=1.0, label=reference_label)
    symbol = {"w": "$w$", "gamma": r"$\gamma$"}.get(x, x)
    ax.set(xlabel=symbol if x != "w" else r"$w$  ($\gamma = 1 + w$)", ylabel=ylabel or metric)
    if title is not None:
        ax.set_title(title)
    return ax
