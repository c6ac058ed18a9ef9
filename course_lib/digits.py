"""TRANSITIONAL (issue 8): the MNIST hub was split into concept modules; this module only
re-exports the old names for lessons that have not switched yet and is deleted once they
have. New homes: /tmp/plan/api_moves.md (recipes, data, conditional, evaluate, sweeps,
tables, plots, classifier_metrics, guidance, widgets)."""

from __future__ import annotations

from .classifier_metrics import noisy_accuracy  # noqa: F401
from .conditional import cfg_grid, classifier_grid, grid_labels, grid_noise  # noqa: F401
from .data import NUM_CLASSES, balanced_subset  # noqa: F401
from .data import load_mnist as load_digits  # noqa: F401
from .evaluate import (feature_frechet, judge_cfg_model, judge_features, judged_accuracy,  # noqa: F401
                       score_2d, within_class_diversity)
from .guidance import classifier_log_prob_fn  # noqa: F401
from .plots import plot_sweep  # noqa: F401
from .recipes import DigitsRecipe, train_judge, train_mnist_cfg, train_mnist_classifier  # noqa: F401
from .sweeps import real_digits_row, sweep, sweep_2d  # noqa: F401
from .tables import format_rows, rows_where  # noqa: F401


def tradeoff_metrics_2d(samples, target, mixture, y: int, k: int = 5) -> dict:
    """Old name of :func:`course_lib.evaluate.score_2d` ``(samples, mixture, y, target, k=k)``."""
    return score_2d(samples, mixture, y, target, k=k)


def __getattr__(name: str):
    """The explorer names, from widgets (lazily: widgets still imports this module until it switches)."""
    if name in ("DigitGridExplorer", "cfg_render", "classifier_render"):
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'course_lib.digits' has no attribute {name!r}")
