"""Slider explorers: thin ipywidgets shells over pure ``render(value, seed)`` functions (docs/style.md, "Widgets").

:class:`Explorer` is what every slider shares: frames (the render's data and its PNG) cached
by ``(value, seed)``; a background precompute of every slider value (a one-worker
``concurrent.futures.ThreadPoolExecutor`` drawing on a twin figure, nearest the slider first),
so that a move only swaps precomputed PNG bytes into an ``ipywidgets.Image``; and a move to a
value not yet computed renders it on the spot, so the picture always matches the readout.
Subclasses only draw, moving artists in place over a cached background (blitting):
:class:`ScatterExplorer` (2-D samples) and :class:`DigitGridExplorer` (guided digits). Each
shows a static figure at its starting value, so a headless run shows something, and every
readout shows both conventions of docs/conventions.md, "Guidance weights": ``w`` and ``gamma = 1 + w``.
"""

from __future__ import annotations

import bisect
import io
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import conditional, diffusion, guidance, plots, static_slider, validate
from .data import NUM_CLASSES
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


def _key(value: float, seed: int) -> tuple[float, int]:
    return round(float(value), 6), int(seed)


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


class Frame(NamedTuple):
    """One cached slider position: the render's data and, once drawn, its PNG."""
    data: Any
    png: bytes | None = None


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

    Subclasses draw: ``_figure(data)`` builds a figure of ``data`` at ``self.value`` and names
    its moving artists, ``_show(moving, data, value)`` moves them in place, ``_slider()``.
    """

    def __init__(self, render: RenderFn, values: Sequence[float], value: float, *, symbol: str, seed: int = 0,
                 precompute: bool = True, readout: Callable[[float], str] | None = None) -> None:
        values = [float(v) for v in values]
        if not values or not all(math.isfinite(v) for v in values) or values != sorted(set(values)):
            raise ValueError(f"values must be a non-empty increasing sequence of finite numbers, got {values!r}")
        if readout is None:
            weight_readout(symbol, 0.0)  # checks the symbol
        self.render, self.values, self.symbol = render, values, symbol
        self.readout = (lambda v: weight_readout(symbol, v)) if readout is None else readout
        self.seed, self.value = _check_seed(seed), self._check_value(value)
        self.cache: dict[tuple[float, int], Frame] = {}
        self._lock = threading.Lock()
        self._rendering: dict[tuple[float, int], threading.Event] = {}
        self._generation, self._executor, self._future, self._twin = 0, None, None, None
        self._shown = _Canvas(*self._figure(self.data(self.value)))
        self.fig = self._shown.fig
        self.png = self._keep(self.value, self.seed, self._shown.png())
        if precompute:
            self.start_precompute()

    def _check_value(self, value: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not self.values[0] <= value <= self.values[-1]:
            raise ValueError(f"value must be a finite number in [{self.values[0]:g}, {self.values[-1]:g}], "
                             f"got {value!r}")
        return float(value)

    def data(self, value: float, seed: int | None = None) -> Any:
        """``render(value, seed)``, from the cache when it is there; thread-safe: a render in
        progress on the other thread is waited for, never repeated."""
        key = _key(value, self.seed if seed is None else seed)
        with self._lock:
            frame, event = self.cache.get(key), self._rendering.get(key)
            mine = frame is None and event is None
            if mine:
                event = self._rendering[key] = threading.Event()
        if frame is not None:
            return frame.data
        if not mine:
            event.wait()
            return self.data(*key)  # from the cache, or (the other render failed) ours
        try:
            data = self.render(*key)
            with self._lock:
                self.cache.setdefault(key, Frame(data))
            return data
        finally:
            with self._lock:
                del self._rendering[key]
            event.set()

    def _keep(self, value: float, seed: int, png: bytes) -> bytes:
        key = _key(value, seed)
        with self._lock:
            self.cache[key] = Frame(self.cache[key].data, png)
        return png

    def update(self, value: float, seed: int | None = None) -> float:
        """Show ``value`` (and ``seed``): the cached PNG if there is one, else render and draw it now;
        the shown figure's artists move in place either way. Returns the seconds taken."""
        start = time.perf_counter()
        value = self._check_value(value)
        if seed is not None and _check_seed(seed) != self.seed:
            self.seed = seed
            if self._executor is not None:
                self.start_precompute()
        data = self.data(value)
        self._show(self._shown.moving, data, value)
        png = self.cache[_key(value, self.seed)].png
        self.png = self._keep(value, self.seed, self._shown.png()) if png is None else png
        self.value = value
        return time.perf_counter() - start

    def start_precompute(self) -> Future:
        """Render and draw every slider value for the current seed in the background, on a twin
        figure, one value per job: each job takes the missing value nearest the slider and queues
        the next. A later call (or a new seed) supersedes it. At interpreter exit concurrent.futures
        joins its worker and refuses new jobs, so exit waits for the render in progress only (a
        daemon thread killed inside a torch kernel would abort the process with exit code 134)."""
        if self._twin is None:  # built here: every figure is made on the caller's thread
            self._twin = _Canvas(*self._figure(self.data(self.value)))
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-precompute")
        with self._lock:
            self._generation += 1
        self._future = self._executor.submit(self._precompute_next, self._generation)
        return self._future

    def _missing(self) -> float | None:
        """The slider value fewest steps from the current one (right first, where ArrowRight goes)
        that has no PNG yet for the current seed."""
        seed, here = self.seed, bisect.bisect_left(self.values, self.value)
        with self._lock:
            todo = [i for i, v in enumerate(self.values) if getattr(self.cache.get(_key(v, seed)), "png", None) is None]
        return self.values[min(todo, key=lambda i: (abs(i - here), -i))] if todo else None

    def _precompute_next(self, generation: int) -> None:
        value, seed = self._missing(), self.seed
        if generation != self._generation or value is None:
            return
        data = self.data(value, seed)
        self._show(self._twin.moving, data, value)
        self._keep(value, seed, self._twin.png())
        try:
            self._future = self._executor.submit(self._precompute_next, generation)
        except RuntimeError:  # the interpreter is shutting down
            pass

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background precompute (re-raising its error); True once every value is drawn."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._missing() is not None and (future := self._future) is not None:
            try:
                future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if future is self._future:  # the chain ended: stopped or superseded
                break
        return self._missing() is None

    def stop(self) -> None:
        """Stop precomputing after the value in progress."""
        with self._lock:
            self._generation += 1

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
        lo, hi, step = (float(v) for v in value_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and step > 0 and lo < hi):
            raise ValueError(f"value_range must be finite (min, max, step) with min < max and step > 0, "
                             f"got {value_range!r}")
        self.value_range = (lo, hi, step)
        self.titles, self.background, self.color = titles, background, color
        self.extent = (-extent, extent, -extent, extent) if isinstance(extent, (int, float)) else tuple(extent)
        values = [_key(lo + i * step, 0)[0] for i in range(int(round((hi - lo) / step)) + 1)]
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
    readout; a move swaps the image's data (``set_data``)."""

    def __init__(self, render: RenderFn, values: Sequence[float], value: float, *, symbol: str = "w",
                 seed: int = 0, nrow: int = NUM_CLASSES, precompute: bool = True, scale: float = 0.018,
                 readout: Callable[[float], str] | None = None) -> None:
        self.nrow, self.scale = nrow, scale
        super().__init__(render, values, value, symbol=symbol, seed=seed, precompute=precompute, readout=readout)
        self.ax = self.fig.axes[0]
        self.image, self.title = self._shown.moving["image"], self._shown.moving["title"]

    def _figure(self, data: torch.Tensor) -> tuple[Figure, dict[str, Artist]]:
        canvas = plots.tile_images(data, self.nrow)
        height, width = canvas.shape
        fig = Figure(figsize=(self.scale * width + 0.2, self.scale * height + 0.5), dpi=100, layout="constrained")
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
