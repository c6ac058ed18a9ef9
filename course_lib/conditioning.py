"""TRANSITIONAL (issue 8): split into concept modules; this module only re-exports the old
names for lessons that have not switched yet and is deleted once they have
(/tmp/plan/api_moves.md)."""

from __future__ import annotations

from .conditional import noise_under_labels, sample_by_label, sample_with_labels  # noqa: F401
from .data import subsample_class  # noqa: F401
from .evaluate import ClassFit, confusion_matrix, fit_by_class, judge_verdicts, per_class_accuracy  # noqa: F401
from .guidance import drop_labels  # noqa: F401
from .plots import digit_table, plot_confusion  # noqa: F401
