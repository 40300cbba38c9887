"""Plain-text tables for task logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def metrics_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """A fixed-width table: one row per key of `rows` (e.g. a horizon), one column per metric."""
    columns = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    header = ["", *columns]
    body = [[str(name), *(_cell(metrics.get(c)) for c in columns)] for name, metrics in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *body]]
    return "\n".join(lines)
