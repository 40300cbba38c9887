"""Forward-return targets (docs/data.md): never filled where the future is unknown."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

HORIZONS: tuple[int, ...] = (1, 5, 10, 20)


def target_columns(horizons: Sequence[int] = HORIZONS) -> list[str]:
    return [f"target_{h}d" for h in horizons]


def add_targets(
    lf: pl.LazyFrame | pl.DataFrame,
    horizons: Sequence[int] = HORIZONS,
    price_col: str = "AdjustmentClose",
    by: str = "Code",
) -> pl.LazyFrame:
    """Add `target_{h}d` = price h sessions ahead (of the same Code) / price - 1.

    Rows must be sorted by (Code, Date) with one row per traded session. The last h rows of each
    Code (end of its series or of the data) get null, never 0: a filled zero
    would invent returns that nobody observed.
    """
    price = pl.col(price_col)
    return lf.lazy().with_columns(
        [(price.shift(-h).over(by) / price - 1.0).alias(f"target_{h}d") for h in horizons]
    )
