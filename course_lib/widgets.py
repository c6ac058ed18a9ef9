"""Slider explorers: thin ipywidgets shells over pure ``render(value, seed)`` functions.

Each explorer draws a useful static figure at its default value (so a headless
run shows something), and on a slider move it calls ``render``, updates the
existing artists in place (``set_offsets``) and redraws only them over a cached
background (blitting), shown as a PNG image widget. Every
guidance readout shows both conventions of DESIGN.md section 2: ``w`` and
``gamma = 1 + w``.
"""

from __future__ import annotations

import atexit
import io
import math
import threading
import time
import weakref
from typing import Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import torch

from . import diffusion, digits, guidance, plots
from .toy import GaussianMixture2D

RenderFn = Callable[[float, int], dict[str, torch.Tensor]]
GridRenderFn = Callable[[float, int], torch.Tensor]


def figure_png(fig: Figure) -> bytes:
    """The figure's drawn canvas as PNG bytes (fast compression), for an image widget."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def explorer_box(slider, explorer):
    """Wire ``slider`` to ``explorer`` (anything with ``.update(value)``, ``.png``, ``.value`` and
    ``.symbol``): a box of the slider, a readout in both conventions and the figure as an image.

    The box also carries the figure as ``image/png`` in its display data, so where no widget
    manager runs (a headless execution, a static notebook viewer) the starting figure still shows."""
    import base64

    import ipywidgets as W

    readout = W.Label(weight_readout(explorer.symbol, explorer.value))
    image = W.Image(value=explorer.png, format="png")

    def on_change(change) -> None:
        explorer.update(change["new"])
        readout.value = weight_readout(explorer.symbol, change["new"])
        image.value = explorer.png

    slider.observe(on_change, names="value")

    class ExplorerBox(W.VBox):
        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            data["image/png"] = base64.b64encode(image.value).decode("ascii")
            return data

    return ExplorerBox([W.HBox([slider, readout], layout=W.Layout(flex_flow="row wrap")), image])


def weight_readout(symbol: str, value: float) -> str:
    """``w = 2.00 | gamma = 1 + w = 3.00`` (or the same from ``gamma``), in both conventions."""
    if symbol == "w":
        return f"w = {value:.2f}  |  γ = 1 + w = {value + 1:.2f}  (diffusers guidance_scale {value + 1:.2f})"
    if symbol == "gamma":
        return f"γ = {value:.2f}  |  w = γ − 1 = {value - 1:.2f}"
    raise ValueError(f"symbol must be 'w' or 'gamma', got {symbol!r}")


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def cfg_render_2d(model: torch.nn.Module, mixture: GaussianMixture2D, schedule: diffusion.Schedule, y: int,
                  *, n: int = 1000, steps: int = 10) -> RenderFn:
    """``render(w, seed) -> {"learned", "exact"}``: CFG samples ``[n, 2]`` from the
    learned model and from the exact oracle, deterministic DDIM from the same
    noise ``x_T`` (drawn from ``seed``) at every ``w``, so points slide as ``w`` moves."""
    K = mixture.num_classes
    guidance.check_labels(y, 1, K)

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
    guidance.check_labels(y, 1, K)
    learned_log_prob = lambda x, t: torch.log_softmax(classifier(x, t), dim=1)  # noqa: E731

    def render(gamma: float, seed: int = 0) -> dict[str, torch.Tensor]:
        x_T = _noise(n, seed)
        learned_fn = guidance.classifier_guidance(guidance.model_eps_fn(model, K, K), learned_log_prob, y,
                                                  gamma, schedule)
        exact_fn = guidance.classifier_guidance(mixture.eps_fn(schedule), mixture.log_posterior_fn(schedule), y,
                                                gamma, schedule)
        return {"learned": diffusion.sample(learned_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T),
                "exact": diffusion.sample(exact_fn, (n, 2), schedule, steps=steps, eta=0.0, x_T=x_T)}

    return render


class ScatterExplorer:
    """Side-by-side scatter panels (one per key of ``render``'s output) driven by one slider.

    Args:
        render: ``render(value, seed) -> {panel: points [n, 2]}``.
        symbol: ``"w"`` or ``"gamma"``; sets the readout.
        value_range: ``(min, max, step)`` of the slider.
        value: the starting value, drawn statically at construction.
        titles: panel titles, by key.
        background: optional ``f(ax, key)`` drawing fixed context (e.g. exact contours).
    """

    def __init__(self, render: RenderFn, *, symbol: str, value_range: tuple[float, float, float], value: float,
                 titles: dict[str, str], background: Callable | None = None, seed: int = 0,
                 color: str = "C0", extent: float = 4.5) -> None:
        lo, hi, _ = value_range
        if not lo <= value <= hi:
            raise ValueError(f"value must lie in [{lo}, {hi}], got {value!r}")
        self.render, self.symbol, self.value_range, self.seed = render, symbol, value_range, seed
        self.value = value
        data = render(value, seed)
        # a figure outside pyplot: the notebook shows it only through the widget's image
        self.fig = Figure(figsize=(4.2 * len(data), 4.4), dpi=100)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(1, len(data), squeeze=False)
        self.axes = dict(zip(data, axes[0]))
        self.artists = {}
        for key, ax in self.axes.items():
            if background is not None:
                background(ax, key)
            self.artists[key] = ax.scatter(*data[key].T.tolist(), s=4, alpha=0.5, color=color,
                                           label=f"{titles.get(key, key)} samples")
            ax.set(xlim=(-extent, extent), ylim=(-extent, extent), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
                   title=titles.get(key, key))
            ax.legend(loc="lower right", fontsize=8)
        self.suptitle = self.fig.suptitle(weight_readout(symbol, value))
        self.fig.tight_layout()
        self._background = self._capture_background()
        self.png = figure_png(self.fig)

    def _moving(self) -> list:
        return [*self.artists.values(), self.suptitle]

    def _capture_background(self):
        """Draw everything that never moves (axes, contours, legends) once and keep the pixels."""
        for artist in self._moving():
            artist.set_visible(False)
        self.fig.canvas.draw()
        background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for artist in self._moving():
            artist.set_visible(True)
        self.fig.canvas.draw()
        return background

    def update(self, value: float) -> float:
        """Re-render at ``value``, move the existing points, redraw only them over the
        cached background (blitting), encode the PNG; return the seconds taken."""
        start = time.perf_counter()
        data = self.render(value, self.seed)
        for key, points in data.items():
            self.artists[key].set_offsets(points.numpy())
        self.suptitle.set_text(weight_readout(self.symbol, value))
        canvas = self.fig.canvas
        canvas.restore_region(self._background)
        for key, artist in self.artists.items():
            self.axes[key].draw_artist(artist)
        self.fig.draw_artist(self.suptitle)
        canvas.blit(self.fig.bbox)
        self.png = figure_png(self.fig)
        self.value = value
        return time.perf_counter() - start

    def widget(self):
        """The slider, its readout and the figure, wired together (needs ipywidgets)."""
        import ipywidgets as W

        lo, hi, step = self.value_range
        label = "w" if self.symbol == "w" else "γ"
        slider = W.FloatSlider(value=self.value, min=lo, max=hi, step=step, description=label,
                               continuous_update=True, readout_format=".2f",
                               layout=W.Layout(width="60%"))
        return explorer_box(slider, self)


def cfg_render(model: torch.nn.Module, *, m: int = 4, steps: int = 20,
               schedule: diffusion.Schedule | None = None) -> GridRenderFn:
    """``render(w, seed) -> images [10 * m, 1, 28, 28]``: :func:`cfg_grid` from the noise
    :func:`grid_noise` ``(m, seed)``, so every ``w`` starts from the same noise."""
    digits.grid_labels(m)
    schedule = digits._schedule_for(model, schedule)

    def render(w: float, seed: int = 0) -> torch.Tensor:
        return digits.cfg_grid(model, w, digits.grid_noise(m, seed), steps, schedule=schedule)

    return render


def classifier_render(model: torch.nn.Module, classifier: torch.nn.Module, *, m: int = 4, steps: int = 20,
                      schedule: diffusion.Schedule | None = None) -> GridRenderFn:
    """``render(gamma, seed) -> images [10 * m, 1, 28, 28]``: :func:`classifier_grid` from
    :func:`grid_noise` ``(m, seed)``."""
    digits.grid_labels(m)
    schedule = digits._schedule_for(model, schedule)

    def render(gamma: float, seed: int = 0) -> torch.Tensor:
        return digits.classifier_grid(model, classifier, gamma, digits.grid_noise(m, seed), steps, schedule=schedule)

    return render


_LIVE_EXPLORERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_precompute_threads() -> None:
    """At interpreter exit, let every background render finish its grid and stop: a daemon
    thread killed inside a torch kernel aborts the process ("terminate called ...")."""
    for explorer in list(_LIVE_EXPLORERS):
        explorer.stop()
        if explorer._thread is not None:
            explorer._thread.join(timeout=30)


def _key(value: float, seed: int) -> tuple[float, int]:
    return round(float(value), 6), int(seed)


class DigitGridExplorer:
    """A grid of guided digits under one slider: a thin shell over ``render(value, seed)``.

    The figure shows ``render(value, seed)`` tiled ten digits to a row, titled with
    :func:`course_lib.weight_readout`. :meth:`update` changes the image in place
    (``set_data``), redraws only the image and the title over a cached background
    (blitting) and encodes the PNG that the widget shows, as :class:`ScatterExplorer` does. Grids are cached by ``(value, seed)``; with
    ``precompute=True`` a background thread renders the slider's ``values`` for the
    current seed, nearest first, so most moves only redraw. A move to a grid not yet
    computed renders it at once (or waits for the background thread if that thread is
    rendering that very grid): the picture always matches the readout.

    Args:
        render: ``render(value, seed) -> images [B, 1, 28, 28]``, a pure function.
        values: the slider's discrete values (increasing, finite).
        value: the starting value, drawn at construction.
        symbol: ``"w"`` or ``"gamma"``; sets the readout.
    """

    def __init__(self, render: GridRenderFn, values: Sequence[float], value: float, *, symbol: str = "w",
                 seed: int = 0, nrow: int = digits.NUM_CLASSES, precompute: bool = True, scale: float = 0.018) -> None:
        values = [float(v) for v in values]
        if not values or not all(math.isfinite(v) for v in values) or values != sorted(set(values)):
            raise ValueError(f"values must be a non-empty increasing sequence of finite numbers, got {values!r}")
        weight_readout(symbol, 0.0)  # checks the symbol
        self.render, self.values, self.symbol, self.nrow = render, values, symbol, nrow
        self.seed = self._check_seed(seed)
        self.cache: dict[tuple[float, int], torch.Tensor] = {}
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[float, int], threading.Event] = {}
        self._generation = 0
        self._thread: threading.Thread | None = None
        self.value = self._check_value(value)
        canvas = plots.tile_images(self.grid(self.value), nrow)
        height, width = canvas.shape
        # a figure outside pyplot: the notebook shows it through the widget's image only
        self.fig = Figure(figsize=(scale * width + 0.2, scale * height + 0.5), dpi=100, layout="constrained")
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.subplots()
        self.image = self.ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        self.ax.set_axis_off()
        self.title = self.ax.set_title(weight_readout(symbol, self.value), fontsize=9)
        self._background = self._capture_background()
        self.png = figure_png(self.fig)
        if precompute:
            self.start_precompute()

    def _check_value(self, value: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not self.values[0] <= value <= self.values[-1]:
            raise ValueError(f"value must be a finite number in [{self.values[0]:g}, {self.values[-1]:g}], "
                             f"got {value!r}")
        return float(value)

    @staticmethod
    def _check_seed(seed: int) -> int:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return seed

    def _capture_background(self):
        """Draw what never moves once (with the layout fixed) and keep its pixels."""
        self.fig.canvas.draw()
        self.fig.set_layout_engine("none")  # freeze the layout: later titles must not move the axes
        for artist in (self.image, self.title):
            artist.set_visible(False)
        self.fig.canvas.draw()
        background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for artist in (self.image, self.title):
            artist.set_visible(True)
        self.fig.canvas.draw()
        return background

    def grid(self, value: float, seed: int | None = None) -> torch.Tensor:
        """``render(value, seed)``, from the cache when it is there (thread-safe)."""
        key = _key(value, self.seed if seed is None else seed)
        with self._lock:
            if key in self.cache:
                return self.cache[key]
            event = self._in_flight.get(key)
            mine = event is None
            if mine:  # nobody is rendering it: we do
                event = self._in_flight[key] = threading.Event()
        if not mine:
            event.wait()
            with self._lock:
                if key in self.cache:
                    return self.cache[key]
            return self.grid(value, seed)  # the other render failed; try ourselves
        try:
            images = self.render(key[0], key[1])
            with self._lock:
                self.cache[key] = images
            return images
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
            event.set()

    def update(self, value: float, seed: int | None = None) -> float:
        """Show the grid at ``value`` (and ``seed``) in place and encode the PNG; return the seconds taken."""
        start = time.perf_counter()
        value = self._check_value(value)
        if seed is not None and self._check_seed(seed) != self.seed:
            self.seed = seed
            if self._thread is not None:
                self.start_precompute()
        self.image.set_data(plots.tile_images(self.grid(value), self.nrow))
        self.title.set_text(weight_readout(self.symbol, value))
        canvas = self.fig.canvas
        canvas.restore_region(self._background)
        self.ax.draw_artist(self.image)
        self.ax.draw_artist(self.title)
        canvas.blit(self.fig.bbox)
        self.png = figure_png(self.fig)
        self.value = value
        return time.perf_counter() - start

    def start_precompute(self) -> threading.Thread:
        """Render the slider's values for the current seed in a background thread, nearest
        to the current value first. A later call (or a new seed) supersedes it."""
        with self._lock:
            self._generation += 1
            generation, seed = self._generation, self.seed
        order = sorted(self.values, key=lambda v: (abs(v - self.value), v))

        def work() -> None:
            for v in order:
                if self._generation != generation:
                    return
                self.grid(v, seed)

        _LIVE_EXPLORERS.add(self)
        self._thread = threading.Thread(target=work, name="digit-grid-precompute", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True once every value is cached for the current seed."""
        if self._thread is not None:
            self._thread.join(timeout)
        return all(_key(v, self.seed) in self.cache for v in self.values)

    def stop(self) -> None:
        """Stop precomputing after the grid in progress."""
        with self._lock:
            self._generation += 1

    def widget(self):
        """A discrete slider over ``values``, its readout and the figure, wired together (needs ipywidgets)."""
        import ipywidgets as W

        label = "w" if self.symbol == "w" else "γ"
        slider = W.SelectionSlider(options=[(f"{v:g}", v) for v in self.values],
                                   value=min(self.values, key=lambda v: abs(v - self.value)), description=label,
                                   continuous_update=True, layout=W.Layout(width="60%"))
        return explorer_box(slider, self)
