"""Slider explorers: thin ipywidgets shells over pure ``render(value, seed)`` functions (docs/style.md, "Widgets").

:class:`Explorer` is what every slider shares: frames (the render's data and its PNG) kept in a
:class:`~course_lib.frame_cache.FrameCache`, whose worker draws every slider value ahead on a twin
figure, so that a move only swaps precomputed PNG bytes into an ``ipywidgets.Image``; and a move to a
value not yet computed renders it on the spot, so the picture always matches the readout.
Subclasses only draw, moving artists in place over a cached background (blitting):
:class:`ScatterExplorer` (2-D samples) and :class:`DigitGridExplorer` (guided digits). Each
shows a static figure at its starting value, so a headless run shows something, and every
readout shows both conventions of docs/conventions.md, "Guidance weights": ``w`` and ``gamma = 1 + w``.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import Future
from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import conditional, diffusion, guidance, plots, static_slider, validate
from .data import NUM_CLASSES
from .frame_cache import FrameCache, key
from .toy import GaussianMixture2D

RenderFn = Callable[[float, int], Any]


def figure_png(fig: Figure) -> bytes:
    """The figure's drawn canvas as PNG bytes (fast compression), for an image widget."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def weight_readout(symbol: str, value: float) -> str:
    """``w = 2.00  |  γ = 1 + w = 3.00  |  ...`` (or the same from ``gamma``), in both conventions.

    diffusers' ``guidance_scale`` equals ``1 + w`` only above 1: at or below 1 its pipelines
    skip guidance and use the conditional model, so no scale matches ``w < 0``."""
    if symbol == "w":
        both = f"w = {value:.2f}  |  γ = 1 + w = {value + 1:.2f}"
        if value > 0:
            return f"{both}  |  diffusers guidance_scale = {value + 1:.2f}"
        if value == 0:
            return f"{both}  |  diffusers guidance_scale ≤ 1 (the conditional model)"
        return f"{both}  |  diffusers: no equivalent (guidance_scale ≤ 1 is the conditional model)"
    if symbol == "gamma":
        return f"γ = {value:.2f}  |  w = γ − 1 = {value - 1:.2f}"
    raise ValueError(f"symbol must be 'w' or 'gamma', got {symbol!r}")


class Frame(NamedTuple):
    """One cached slider position: the render's data and its drawn PNG."""
    data: Any
    png: bytes


class _Canvas:
    """A figure outside pyplot, its moving artists, and the pixels of everything else."""

    def __init__(self, fig: Figure, moving: dict[str, Artist]) -> None:
        self.fig, self.moving = fig, moving
        fig.canvas.draw()
        fig.set_layout_engine("none")  # freeze the layout: a new title must not move the axes
        for artist in moving.values():
            artist.set_visible(False)
        fig.canvas.draw()
        self.background = fig.canvas.copy_from_bbox(fig.bbox)
        for artist in moving.values():
            artist.set_visible(True)
        fig.canvas.draw()

    def png(self) -> bytes:
        """Redraw only the moving artists over the background (blitting) and encode the PNG."""
        self.fig.canvas.restore_region(self.background)
        for artist in self.moving.values():
            self.fig.draw_artist(artist)
        self.fig.canvas.blit(self.fig.bbox)
        return figure_png(self.fig)


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def cfg_render_2d(model: torch.nn.Module, mixture: GaussianMixture2D, schedule: diffusion.Schedule, y: int,
                  *, n: int = 1000, steps: int = 10) -> RenderFn:
    """``render(w, seed) -> {"learned", "exact"}``: CFG samples ``[n, 2]`` from the
    learned model and from the exact oracle, deterministic DDIM from the same
    noise ``x_T`` (drawn from ``seed``) at every ``w``, so points slide as ``w`` moves."""
    K = mixture.num_classes
    validate.labels(y, 1, K)

    def render(w: float, seed: int = 0) -> dict[str, torch.Tensor]:
        x_T = _noise(n, seed)
        learned = diffusion.sample(guidance.model_cfg_eps_fn(model, y, w, K), (n, 2), schedule,
                                   steps=steps, eta=0.0, x_T=x_T)
        exact_fn = guidance.cfg(mixture.eps_fn(schedule, y), mixture.eps_fn(schedule), w)
        exact = diffusion.sample(exact_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T)
        return {"learned": learned, "exact": exact}

    return render


def classifier_guidance_render_2d(model: torch.nn.Module, classifier: torch.nn.Module,
                                  mixture: GaussianMixture2D, schedule: diffusion.Schedule, y: int,
                                  *, n: int = 1000, steps: int = 10) -> RenderFn:
    """``render(gamma, seed) -> {"learned", "exact"}``: classifier-guided samples from
    the learned unconditional model (null label) with the learned noise-aware
    classifier, and from the exact score with the exact posterior, same noise."""
    K = mixture.num_classes
    validate.labels(y, 1, K)
    learned_log_prob = guidance.classifier_log_prob_fn(classifier)

    def render(gamma: float, seed: int = 0) -> dict[str, torch.Tensor]:
        x_T = _noise(n, seed)
        learned_fn = guidance.classifier_guidance(guidance.model_eps_fn(model, K, K), learned_log_prob, y,
                                                  gamma, schedule)
        exact_fn = guidance.classifier_guidance(mixture.eps_fn(schedule), mixture.log_posterior_fn(schedule), y,
                                                gamma, schedule)
        return {"learned": diffusion.sample(learned_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T),
                "exact": diffusion.sample(exact_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T)}

    return render


def cfg_render(model: torch.nn.Module, *, m: int = 4, steps: int = 20,
               schedule: diffusion.Schedule | None = None) -> RenderFn:
    """``render(w, seed) -> images [10 * m, 1, 28, 28]``: :func:`cfg_grid` from the noise
    :func:`grid_noise` ``(m, seed)``, so every ``w`` starts from the same noise."""
    conditional.grid_labels(m)
    schedule = conditional.model_schedule(model, schedule)

    def render(w: float, seed: int = 0) -> torch.Tensor:
        return conditional.cfg_grid(model, w, conditional.grid_noise(m, seed), steps, schedule=schedule)

    return render


def classifier_render(model: torch.nn.Module, classifier: torch.nn.Module, *, m: int = 4, steps: int = 20,
                      schedule: diffusion.Schedule | None = None) -> RenderFn:
    """``render(gamma, seed) -> images [10 * m, 1, 28, 28]``: :func:`classifier_grid` from
    :func:`grid_noise` ``(m, seed)``."""
    conditional.grid_labels(m)
    schedule = conditional.model_schedule(model, schedule)

    def render(gamma: float, seed: int = 0) -> torch.Tensor:
        return conditional.classifier_grid(model, classifier, gamma, conditional.grid_noise(m, seed), steps,
                                           schedule=schedule)

    return render


class Explorer:
    """A figure under one slider over ``values``: a thin shell over ``render(value, seed)``.

    Args:
        render: ``render(value, seed) -> data``, a pure function.
        values: the slider's values (increasing, finite); ``value`` may be any number between.
        value: the starting value, drawn at construction.
        symbol: ``"w"`` or ``"gamma"`` (the readout shows both conventions), or any name of
            the knob when ``readout`` is given.
        seed: the noise seed handed to ``render``.
        precompute: render and draw every slider value in the background.
        readout: ``readout(value) -> str`` for a knob that is not a guidance weight.

    ``cache`` holds every drawn :class:`Frame` by ``(value, seed)`` and draws the slider's values
    ahead (a :class:`~course_lib.frame_cache.FrameCache`). Subclasses draw: ``_figure(data)`` builds
    a figure of ``data`` at ``self.value`` and names its moving artists, ``_show(moving, data,
    value)`` moves them in place, ``_slider()``.
    """

    def __init__(self, render: RenderFn, values: Sequence[float], value: float, *, symbol: str, seed: int = 0,
                 precompute: bool = True, readout: Callable[[float], str] | None = None) -> None:
        self.cache: FrameCache[Frame] = FrameCache(self._draw_on_twin, values,
                                                   seed=validate.integer(seed, "seed", minimum=0),
                                                   thread_name="explorer-precompute")
        if readout is None:
            weight_readout(symbol, 0.0)  # checks the symbol
        self.render, self.values, self.symbol = render, self.cache.values, symbol
        self.readout = (lambda v: weight_readout(symbol, v)) if readout is None else readout
        self.value = self.cache.near = self._check_value(value)
        self._twin: _Canvas | None = None
        data = self.data(self.value)
        self._shown = _Canvas(*self._figure(data))
        self.fig, self.png = self._shown.fig, self._shown.png()
        self.cache.put(self.value, self.seed, Frame(data, self.png))
        if validate.flag(precompute, "precompute"):
            self.start_precompute()

    @property
    def seed(self) -> int:
        """The noise seed handed to ``render`` (:meth:`update` changes it)."""
        return self.cache.seed

    def _check_value(self, value: float) -> float:
        return validate.number(value, "value", minimum=self.values[0], maximum=self.values[-1])

    def data(self, value: float, seed: int | None = None) -> Any:
        """``render(value, seed)`` (``seed``: the explorer's), from the cache when it is there, else rendered now."""
        value, seed = key(value, self.seed if seed is None else seed)
        frame = self.cache.get((value, seed))
        return self.render(value, seed) if frame is None else frame.data

    def _draw(self, canvas: _Canvas, value: float, seed: int) -> Frame:
        data = self.render(value, seed)
        self._show(canvas.moving, data, value)
        return Frame(data, canvas.png())

    def _draw_on_twin(self, value: float, seed: int) -> Frame:
        """The worker's frame: drawn on the twin figure, which only the worker thread touches."""
        return self._draw(self._twin, value, seed)

    def update(self, value: float, seed: int | None = None) -> float:
        """Show ``value`` (and ``seed``): the cached PNG if there is one, else render and draw it now;
        the shown figure's artists move in place either way. Returns the seconds taken."""
        start = time.perf_counter()
        value = self._check_value(value)
        if seed is not None and validate.integer(seed, "seed", minimum=0) != self.seed:
            self.cache.seed = seed
            if self.cache.running:
                self.cache.start()
        frame = self.cache.frame(value, self.seed, make=partial(self._draw, self._shown))
        self._show(self._shown.moving, frame.data, value)
        self.png, self.value = frame.png, value
        self.cache.near = value
        return time.perf_counter() - start

    def start_precompute(self) -> Future:
        """Render and draw every slider value for the current seed in the background, on a twin
        figure, the values nearest the slider first (:meth:`FrameCache.start
        <course_lib.frame_cache.FrameCache.start>`). A later call (or a new seed) supersedes it."""
        if self._twin is None:  # built here: every figure is made on the caller's thread
            self._twin = _Canvas(*self._figure(self.data(self.value)))
        return self.cache.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background precompute (re-raising its error); True once every value is drawn."""
        return self.cache.wait(timeout)

    def stop(self) -> None:
        """Stop precomputing after the value in progress."""
        self.cache.stop()

    def widget(self):
        """The slider, its readout and the figure as an image, wired together (needs ipywidgets).
        The box also carries the figure as ``image/png`` in its display data, so where no widget
        manager runs (a headless execution, a static viewer) the figure still shows."""
        if static_slider.enabled():  # the course site: every frame in the page, no kernel
            return static_slider.from_explorer(self)
        import base64

        import ipywidgets as W

        slider, readout = self._slider(), W.Label(self.readout(self.value))
        image = W.Image(value=self.png, format="png")

        def on_change(change) -> None:
            self.update(change["new"])
            image.value = self.png
            readout.value = self.readout(change["new"])

        slider.observe(on_change, names="value")

        class ExplorerBox(W.VBox):
            def _repr_mimebundle_(self, **kwargs):
                data = super()._repr_mimebundle_(**kwargs)
                data["image/png"] = base64.b64encode(image.value).decode("ascii")
                return data

        box = ExplorerBox([W.HBox([slider, readout], layout=W.Layout(flex_flow="row wrap")), image])
        box.add_class(f"course-lib-{type(self).__name__}")  # for the browser test and custom CSS
        return box

    def _label(self) -> str:
        return {"w": "w", "gamma": "γ"}.get(self.symbol, self.symbol)


class ScatterExplorer(Explorer):
    """Side-by-side scatter panels (one per key of ``render``'s output) under one slider.

    Args:
        render: ``render(value, seed) -> {panel: points [n, 2]}``.
        symbol: ``"w"`` or ``"gamma"``; sets the readout.
        value_range: ``(min, max, step)`` of the slider; every step is precomputed.
        value: the starting value, drawn statically at construction.
        titles: panel titles, by key.
        background: optional ``f(ax, key)`` drawing fixed context (e.g. exact contours).
        extent: the half-width of the square drawn, or ``(xmin, xmax, ymin, ymax)``.
    """

    def __init__(self, render: RenderFn, *, symbol: str, value_range: tuple[float, float, float], value: float,
                 titles: dict[str, str], background: Callable | None = None, seed: int = 0,
                 color: str = "C0", extent: float | tuple[float, float, float, float] = 4.5,
                 precompute: bool = True, readout: Callable[[float], str] | None = None) -> None:
        lo, hi, step = value_range
        lo = validate.number(lo, "value_range's min")
        hi = validate.number(hi, "value_range's max", above=lo)
        step = validate.number(step, "value_range's step", above=0)
        self.value_range = (lo, hi, step)
        self.titles, self.background, self.color = titles, background, color
        self.extent = (-extent, extent, -extent, extent) if isinstance(extent, (int, float)) else tuple(extent)
        values = [key(lo + i * step, 0)[0] for i in range(int(round((hi - lo) / step)) + 1)]
        super().__init__(render, [v for v in values if v <= hi], value, symbol=symbol, seed=seed,
                         precompute=precompute, readout=readout)
        self.artists = {k: a for k, a in self._shown.moving.items() if k != "title"}
        self.axes = dict(zip(self.artists, self.fig.axes))
        self.suptitle = self._shown.moving["title"]

    def _figure(self, data: dict[str, torch.Tensor]) -> tuple[Figure, dict[str, Artist]]:
        fig = Figure(figsize=(4.2 * len(data), 4.4), dpi=100)  # outside pyplot: shown through the widget only
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(data), squeeze=False)[0]
        moving = {}
        for key, ax in zip(data, axes):
            if self.background is not None:
                self.background(ax, key)
            title = self.titles.get(key, key)
            moving[key] = ax.scatter(*data[key].T.tolist(), s=4, alpha=0.5, color=self.color,
                                     label=f"{title} samples")
            x0, x1, y0, y1 = self.extent
            ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal", xlabel="$x_1$", ylabel="$x_2$", title=title)
            ax.legend(loc="lower right", fontsize=8)
        moving["title"] = fig.suptitle(self.readout(self.value))
        fig.tight_layout()
        return fig, moving

    def _show(self, moving: dict[str, Artist], data: dict[str, torch.Tensor], value: float) -> None:
        for key, points in data.items():
            moving[key].set_offsets(points.numpy())
        moving["title"].set_text(self.readout(value))

    def _slider(self):
        import ipywidgets as W

        lo, hi, step = self.value_range
        return W.FloatSlider(value=self.value, min=lo, max=hi, step=step, description=self._label(),
                             continuous_update=True, readout_format=".2f", layout=W.Layout(width="60%"))


class DigitGridExplorer(Explorer):
    """A grid of guided digits under a slider over ``values`` (arguments as :class:`Explorer`'s):
    ``render(value, seed) -> images [B, 1, 28, 28]`` tiled ``nrow`` to a row, titled with the
    readout; a move swaps the image's data (``set_data``).

    Args:
        nrow: images per row (``int`` >= 1).
        inches_per_pixel: the figure's inches per pixel of the tiled grid (``float`` > 0; the
            default draws ten 28-pixel digits to a row about 5.4 inches wide).
    """

    def __init__(self, render: RenderFn, values: Sequence[float], value: float, *, symbol: str = "w",
                 seed: int = 0, nrow: int = NUM_CLASSES, precompute: bool = True,
                 inches_per_pixel: float = 0.018, readout: Callable[[float], str] | None = None) -> None:
        self.nrow = validate.integer(nrow, "nrow", minimum=1)
        self.inches_per_pixel = validate.number(inches_per_pixel, "inches_per_pixel", above=0)
        super().__init__(render, values, value, symbol=symbol, seed=seed, precompute=precompute, readout=readout)
        self.ax = self.fig.axes[0]
        self.image, self.title = self._shown.moving["image"], self._shown.moving["title"]

    def _figure(self, data: torch.Tensor) -> tuple[Figure, dict[str, Artist]]:
        canvas = plots.tile_images(data, self.nrow)
        height, width = canvas.shape
        inches = self.inches_per_pixel
        fig = Figure(figsize=(inches * width + 0.2, inches * height + 0.5), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        image = ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        return fig, {"image": image, "title": ax.set_title(self.readout(self.value), fontsize=9)}

    def _show(self, moving: dict[str, Artist], data: torch.Tensor, value: float) -> None:
        moving["image"].set_data(plots.tile_images(data, self.nrow))
        moving["title"].set_text(self.readout(value))

    def _slider(self):
        import ipywidgets as W

        return W.SelectionSlider(options=[(f"{v:g}", v) for v in self.values],
                                 value=min(self.values, key=lambda v: abs(v - self.value)), description=self._label(),
                                 continuous_update=True, layout=W.Layout(width="60%"))
