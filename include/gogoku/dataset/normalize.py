"""Cross-sectional normalization: statistics of one Date only, so it can never leak across time."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def cs_zscore(
    lf: pl.LazyFrame | pl.DataFrame, cols: Sequence[str], date_col: str = "Date", clip: float | None = 5.0
) -> pl.LazyFrame:
    """Add `{c}_cs_z`: (x - mean) / std over the names of each `date_col`, clipped to +-clip.

    Nulls are ignored by the statistics and stay null; a Date whose values have no spread (std 0 or
    fewer than two values) gives null, not 0.
    """
    exprs = []
    for c in cols:
        x = pl.col(c)
        std = x.std().over(date_col)
        z = pl.when(std > 0).then((x - x.mean().over(date_col)) / std)
        if clip is not None:
            z = z.clip(-clip, clip)
        exprs.append(z.cast(pl.Float32).alias(f"{c}_cs_z"))
    return lf.lazy().with_columns(exprs)


def cs_rank(lf: pl.LazyFrame | pl.DataFrame, cols: Sequence[str], date_col: str = "Date") -> pl.LazyFrame:
    """Add `{c}_cs_rank`: the per-Date rank scaled to (-0.5, 0.5], nulls kept null."""
    exprs = []
    for c in cols:
        x = pl.col(c)
        n = x.count().over(date_col)
        exprs.append(((x.rank("average").over(date_col) - 0.5) / n - 0.5).cast(pl.Float32).alias(f"{c}_cs_rank"))
    return lf.lazy().with_columns(exprs)
