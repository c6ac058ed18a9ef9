"""TRANSITIONAL (issue 8): renamed :mod:`course_lib.classifier_metrics` (FixedTimeClassifier moved
to :mod:`course_lib.models`, sample_summary became :func:`course_lib.evaluate.score_2d`); this
module only re-exports the old names for lessons that have not switched yet and is deleted once
they have (/tmp/plan/api_moves.md)."""

from __future__ import annotations

from . import models
from .classifier_metrics import (accuracy, cross_entropy, data_metrics_vs_t, gradient_error,  # noqa: F401
                                 guided_step_cost, label_gradients, metrics_vs_t, noised_samples)
from .evaluate import score_2d
from .guidance import classifier_log_prob_fn
from .timing import median_seconds  # noqa: F401


class FixedTimeClassifier(models.FixedTimeClassifier):
    """Old name; ``log_prob_fn()`` is now ``guidance.classifier_log_prob_fn(classifier)``."""

    def log_prob_fn(self):
        return classifier_log_prob_fn(self)


def sample_summary(x0, mixture, y, reference, extent=(-4.5, 4.5, -4.5, 4.5)) -> dict:
    """Old name of :func:`course_lib.evaluate.score_2d` (``p_y`` is ``posterior``, ``spread`` is ``diversity``)."""
    s = score_2d(x0, mixture, y, reference, k=None, extent=extent)
    return {"p_y": s["posterior"], "sw": s["sw"], "spread": s["diversity"], "off_plot": s["off_plot"]}
