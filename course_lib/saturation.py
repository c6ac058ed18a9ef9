"""Oversaturation at large guidance weights, its two fixes, and a slider that switches them.

At large ``w`` the CFG prediction extrapolates far beyond what the model saw, and the denoised
guess ``x0_hat`` leaves the data's range ``[-1, 1]``; samples then come out saturated and are
clamped at the end. Two fixes act on each step (both in :mod:`course_lib.guidance`):

- ``"threshold"``: Imagen's dynamic thresholding of ``x0_hat`` (:func:`guidance.thresholded`);
- ``"rescale"``: CFG-rescale (Lin et al. 2024, :func:`guidance.rescaled`).

:func:`guided_digits` samples digit grids under a fix and returns them *before* the final clamp,
so :func:`outside_fraction` can measure the saturation; :func:`fix_render` is the pure
``render(w, seed)`` of a slider and :func:`switchable` puts one slider per fix behind toggle
buttons, each precomputed in the background like every :class:`~course_lib.widgets.Explorer`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import diffusion, guidance, static_slider
from .conditional import grid_labels, grid_noise, model_schedule
from .data import NUM_CLASSES
from .widgets import DigitGridExplorer, weight_readout

FIXES = ("none", "threshold", "rescale")


def fixed_cfg_eps_fn(model: torch.nn.Module, labels: torch.Tensor, w: float, schedule: diffusion.Schedule,
                     fix: str = "none", *, percentile: float = 0.995, max_value: float = 1.0,
                     phi: float = 0.7) -> diffusion.EpsFn:
    """CFG at weight ``w`` for ``labels`` with one fix: ``"none"``, ``"threshold"``
    (:func:`guidance.thresholded` with ``percentile`` and ``max_value``) or ``"rescale"``
    (:func:`guidance.rescaled` with ``phi``, the conditional prediction as its reference).

    Args:
        labels: an int or a long tensor ``[B]`` of labels in ``0..K-1`` (``B``: the sampler's batch)."""
    if fix not in FIXES:
        raise ValueError(f"fix must be one of {FIXES}, got {fix!r}")
    K = getattr(model, "num_classes", NUM_CLASSES)
    guided = guidance.model_cfg_eps_fn(model, labels, w, K)
    if fix == "threshold":
        return guidance.thresholded(guided, schedule, percentile, max_value)
    if fix == "rescale":
        return guidance.rescaled(guided, guidance.model_eps_fn(model, labels, K), phi)
    return guided


@torch.no_grad()
def guided_digits(model: torch.nn.Module, w: float, x_T: torch.Tensor, fix: str = "none", *, steps: int = 20,
                  schedule: diffusion.Schedule | None = None, **fix_options) -> torch.Tensor:
    """Digits ``[10 * m, 1, 28, 28]`` (sample ``i`` is digit ``i % 10``) by deterministic DDIM from
    ``x_T`` under CFG at ``w`` with ``fix`` (:func:`fixed_cfg_eps_fn`), **not** clamped: pixels
    outside ``[-1, 1]`` are the oversaturation that a final clamp hides.

    Args:
        x_T: ``[10 * m, 1, 28, 28]`` float starting noise (``m`` samples of each digit)."""
    if not isinstance(x_T, torch.Tensor) or x_T.ndim != 4 or x_T.shape[0] % NUM_CLASSES:
        raise ValueError("x_T must be a tensor [10 * m, 1, 28, 28] (m samples of each digit)")
    schedule = model_schedule(model, schedule)
    labels = grid_labels(x_T.shape[0] // NUM_CLASSES)
    eps_fn = fixed_cfg_eps_fn(model, labels, w, schedule, fix, **fix_options)
    return diffusion.sample(eps_fn, tuple(x_T.shape), schedule, steps=steps, eta=0.0, x_T=x_T)


def outside_fraction(images: torch.Tensor, bound: float = 1.0) -> float:
    """The share of pixels with ``|x| > bound``, before any clamp (real digits: 0).

    Args:
        images: ``[N, ...]`` floats, e.g. unclamped digits ``[N, 1, 28, 28]``."""
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or not images.is_floating_point():
        raise ValueError("images must be a float tensor [N, ...]")
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
        raise ValueError(f"bound must be a number > 0, got {bound!r}")
    return float((images.abs() > bound).double().mean())


def fix_render(model: torch.nn.Module, fix: str, *, m: int = 2, steps: int = 20,
               schedule: diffusion.Schedule | None = None, **fix_options):
    """``render(w, seed) -> images [10 * m, 1, 28, 28]``: :func:`guided_digits` under ``fix`` from
    ``grid_noise(m, seed)``, pixels beyond the range shown clamped (as a viewer shows them)."""
    if fix not in FIXES:
        raise ValueError(f"fix must be one of {FIXES}, got {fix!r}")
    schedule = model_schedule(model, schedule)

    def render(w: float, seed: int = 0) -> torch.Tensor:
        x = guided_digits(model, w, grid_noise(m, seed), fix, steps=steps, schedule=schedule, **fix_options)
        return x.clamp(-1.0, 1.0)

    return render


def fix_readout(fix: str):
    """The slider readout: both weight conventions, the fix, and the share of saturated pixels is
    left to the caller (it needs the unclamped samples)."""
    return lambda w: f"{weight_readout('w', w)}  |  fix: {fix}"


def switchable(model: torch.nn.Module, values: Sequence[float], value: float, *, fixes: Sequence[str] = FIXES,
               m: int = 2, steps: int = 20, precompute: bool = True, **fix_options) -> dict[str, DigitGridExplorer]:
    """One :class:`~course_lib.widgets.DigitGridExplorer` per fix over the weights ``values``, from
    the same noise; :func:`switch_widget` shows them behind toggle buttons."""
    return {fix: DigitGridExplorer(fix_render(model, fix, m=m, steps=steps, **fix_options), values, value,
                                   symbol="w", precompute=precompute, readout=fix_readout(fix)) for fix in fixes}


def switch_widget(explorers: dict[str, DigitGridExplorer]):
    """Toggle buttons over the explorers' widgets (needs ipywidgets): the fix switches the picture,
    and each explorer keeps its own slider position and precomputed frames."""
    boxes = {fix: explorer.widget() for fix, explorer in explorers.items()}
    if static_slider.enabled():  # the course site: one static slider per fix, under its name
        return static_slider.StaticStack(boxes, label="fix")
    import ipywidgets as W

    first = next(iter(boxes))
    toggle = W.ToggleButtons(options=list(boxes), value=first, description="fix")
    holder = W.VBox([boxes[first]])

    def on_change(change) -> None:
        holder.children = [boxes[change["new"]]]

    toggle.observe(on_change, names="value")

    class SwitchBox(W.VBox):
        def _repr_mimebundle_(self, **kwargs):  # headless: the shown fix's figure as a PNG
            data = super()._repr_mimebundle_(**kwargs)
            shown = holder.children[0]._repr_mimebundle_(**kwargs)
            if "image/png" in shown:
                data["image/png"] = shown["image/png"]
            return data

    return SwitchBox([toggle, holder])
