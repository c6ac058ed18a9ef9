"""One plain-text table formatter for lessons and the benchmark, and one row filter."""

from __future__ import annotations

import math
from typing import Sequence


def rows_where(rows: Sequence[dict], **match) -> list[dict]:
    """The rows whose entries equal every ``key=value`` in ``match``."""
    return [r for r in rows if all(r.get(key) == value for key, value in match.items())]


def format_rows(rows: Sequence[dict], columns: Sequence[str] | None = None, *, align: str = "right",
                rule: bool = False, number_format: str = ".3f") -> str:
    """A plain-text table of ``rows`` (dicts), one line per row under a header of ``columns``
    (default: the first row's keys). Floats use ``number_format`` (a NaN, such as the knob of
    a real-data row, shows as "-"); other values ``str``. ``align`` is ``"right"`` or ``"left"``;
    ``rule=True`` underlines the header with dashes."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    if align not in ("right", "left"):
        raise ValueError(f"align must be 'right' or 'left', got {align!r}")
    columns = list(columns or rows[0])
    missing = [c for c in columns if any(c not in r for r in rows)]
    if missing:
        raise ValueError(f"columns must be keys of every row; missing {missing}")

    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else format(value, number_format)
        return str(value)

    cells = [columns] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if rule:
        cells.insert(1, ["-" * w for w in widths])
    pad = str.rjust if align == "right" else str.ljust
    return "\n".join("  ".join(pad(c, w) for c, w in zip(row, widths)).rstrip() for row in cells)
