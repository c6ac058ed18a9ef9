"""Sliders that work without a kernel: every frame drawn in advance, swapped by the page itself.

A slider explorer (:mod:`course_lib.widgets`) keeps every slider value's figure as PNG bytes.
:class:`StaticSlider` puts all of them in one block of HTML: an ``<input type="range">``, the
readout, the image, the frames as base64 in a JSON script, and a few lines of inline JavaScript
that swap the image when the slider moves. Nothing is loaded from anywhere: the page works from a
plain file, offline, on any static host.

The course site (``python -m course_lib.site build DIR``) sets ``COURSE_LIB_STATIC_SLIDERS=1``
while it executes the lessons; an explorer's ``widget()`` then returns :func:`from_explorer`'s
static slider instead of the ipywidgets one. In a notebook nothing changes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, Sequence

from PIL import Image

ENV = "COURSE_LIB_STATIC_SLIDERS"

_SCRIPT = """(function (root) {
  var data = JSON.parse(root.querySelector('script.csl-frames').textContent);
  var input = root.querySelector('input.csl-range'), image = root.querySelector('img.csl-image');
  var readout = root.querySelector('output.csl-readout'), value = root.querySelector('span.csl-value');
  function show() {
    var i = Number(input.value);
    image.src = 'data:image/png;base64,' + data.frames[i];
    readout.textContent = data.readouts[i];
    value.textContent = data.labels[i];
  }
  input.addEventListener('input', show);
  input.addEventListener('change', show);
})(document.currentScript.parentElement);"""

_STYLE = ("<style>.course-lib-static-slider{margin:0.5em 0}.course-lib-static-slider .csl-controls"
          "{display:flex;flex-wrap:wrap;gap:0.8em;align-items:center;font-family:sans-serif;font-size:0.9em}"
          ".course-lib-static-slider input.csl-range{width:min(28em,60vw)}"
          ".course-lib-static-slider img.csl-image{max-width:100%;height:auto;display:block}</style>")


def enabled() -> bool:
    """True while the course site is being built (``COURSE_LIB_STATIC_SLIDERS=1``)."""
    return os.environ.get(ENV) == "1"


class StaticSlider:
    """One slider and its pictures as self-contained HTML (``text/html`` in a notebook's output).

    Args:
        frames: one PNG (bytes) per slider position, in slider order.
        labels: the slider value shown beside the slider, per position (e.g. ``"2.5"``).
        readouts: the readout line per position (both guidance conventions, as the widget shows).
        start: the index of the position shown first.
        symbol: the knob's name beside the slider (``"w"``, ``"γ"``, ...).
        kind: a CSS class suffix naming the explorer (``"ScatterExplorer"``).
    """

    def __init__(self, frames: Sequence[bytes], labels: Sequence[str], readouts: Sequence[str], *, start: int = 0,
                 symbol: str = "value", kind: str = "") -> None:
        if not frames or not len(frames) == len(labels) == len(readouts):
            raise ValueError(f"frames, labels and readouts must be non-empty and of one length, got "
                             f"{len(frames)}, {len(labels)} and {len(readouts)}")
        if not all(isinstance(f, bytes) and f.startswith(b"\x89PNG") for f in frames):
            raise ValueError("frames must be PNG bytes")
        if not 0 <= start < len(frames):
            raise ValueError(f"start must be an index in [0, {len(frames) - 1}], got {start!r}")
        self.frames = [base64.b64encode(f).decode("ascii") for f in frames]
        self.labels, self.readouts = [str(x) for x in labels], [str(x) for x in readouts]
        self.start, self.symbol, self.kind = start, str(symbol), str(kind)

    def _repr_html_(self) -> str:
        data = json.dumps({"frames": self.frames, "labels": self.labels, "readouts": self.readouts})
        data = data.replace("</", "<\\/")  # a JSON string can never close its <script>
        i, esc = self.start, html.escape
        kind = f" course-lib-{esc(self.kind)}" if self.kind else ""
        return (f'{_STYLE}<div class="course-lib-static-slider{kind}">'
                f'<div class="csl-controls"><label>{esc(self.symbol)} <input class="csl-range" type="range" min="0" '
                f'max="{len(self.frames) - 1}" step="1" value="{i}" aria-label="{esc(self.symbol)}"></label>'
                f'<span class="csl-value">{esc(self.labels[i])}</span>'
                f'<output class="csl-readout">{esc(self.readouts[i])}</output></div>'
                f'<img class="csl-image" alt="figure at {esc(self.symbol)} = {esc(self.labels[i])}" '
                f'src="data:image/png;base64,{self.frames[i]}">'
                f'<script type="application/json" class="csl-frames">{data}</script>'
                f'<script>{_SCRIPT}</script></div>')

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """HTML for pages, the starting frame as ``image/png`` for viewers that show no HTML."""
        return {"text/html": self._repr_html_(), "image/png": self.frames[self.start],
                "text/plain": f"<slider over {self.symbol}: {len(self.frames)} frames>"}


class StaticStack:
    """Several static sliders under their names, one after another: the page's form of a widget
    that switches between explorers (lesson 06's fixes), since a page has no kernel to switch them."""

    def __init__(self, parts: dict[str, StaticSlider], *, label: str = "") -> None:
        if not parts or not all(isinstance(p, StaticSlider) for p in parts.values()):
            raise ValueError("parts must map names to StaticSlider objects, at least one")
        self.parts, self.label = dict(parts), str(label)

    def _repr_html_(self) -> str:
        prefix = f"{html.escape(self.label)}: " if self.label else ""
        return "".join(f'<div class="course-lib-static-stack"><p><strong>{prefix}{html.escape(str(name))}'
                       f"</strong></p>{part._repr_html_()}</div>" for name, part in self.parts.items())

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        first = next(iter(self.parts.values()))
        return {"text/html": self._repr_html_(), "image/png": first.frames[first.start],
                "text/plain": f"<{len(self.parts)} sliders: {', '.join(map(str, self.parts))}>"}


def compact_png(png: bytes) -> bytes:
    """The same picture in 256 colours, PNG-optimised: about a third of the bytes of the
    widget's fast PNG for a scatter figure, and nothing visible lost on a plot."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def from_explorer(explorer: Any) -> StaticSlider:
    """A :class:`StaticSlider` of every value of a slider explorer: waits for its background
    precompute, draws what is still missing, then shows its starting value again. Frames go
    through :func:`compact_png`."""
    start_value = explorer.value
    explorer.wait()
    frames = []
    for value in explorer.values:
        explorer.update(value)
        frames.append(compact_png(explorer.png))
    explorer.update(start_value)
    start = min(range(len(explorer.values)), key=lambda i: abs(explorer.values[i] - start_value))
    symbol = {"w": "w", "gamma": "γ"}.get(explorer.symbol, explorer.symbol)
    return StaticSlider(frames, [f"{v:g}" for v in explorer.values], [explorer.readout(v) for v in explorer.values],
                        start=start, symbol=symbol, kind=type(explorer).__name__)
