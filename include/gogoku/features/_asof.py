"""Helpers shared by the non-price feature groups: exchange-calendar shifts, as-of joins, z-scores.

Every shift counts the sessions of the offline JPX calendar (`gogoku.calendar`), holidays included,
never weekdays (reference defect 11).
"""

from __future__ import annotations

import polars as pl

from gogoku.calendar import business_days, calendar_bounds


def _sessions() -> pl.LazyFrame:
    first, last = calendar_bounds()
    return pl.LazyFrame({"_s": pl.Series(business_days(first, last), dtype=pl.Date)}).with_row_index("_i")


def session_index(lf: pl.LazyFrame, col: str, out: str) -> pl.LazyFrame:
    """Add `out` (Int64): the index of the last session on or before `col` (row order preserved)."""
    s = _sessions().select(pl.col("_s"), pl.col("_i").cast(pl.Int64).alias(out))
    return (
        lf.with_row_index("_row_si")
        .sort(col)
        .join_asof(s, left_on=col, right_on="_s", strategy="backward", check_sortedness=False)
        .sort("_row_si")
        .drop("_row_si", "_s")
    )


def session_shift(lf: pl.LazyFrame, col: str, n: int, out: str) -> pl.LazyFrame:
    """Add `out`: the n-th session after the last session on or before `col` (n >= 1: strictly after).

    For a business day d this is d + n sessions; for a holiday it is the n-th session after it.
    """
    s = _sessions().select(pl.col("_i").cast(pl.Int64).alias("_k"), pl.col("_s").alias(out))
    return (
        session_index(lf, col, "_k0")
        .with_columns((pl.col("_k0") + n).alias("_k"))
        .join(s, on="_k", how="left", maintain_order="left")
        .drop("_k0", "_k")
    )


def ts_z(x: pl.Expr, window: int, min_samples: int | None = None) -> pl.Expr:
    """Time-series z-score of `x` over its last `window` values (including the current one)."""
    m = min_samples if min_samples is not None else max(window // 2, 2)
    mean = x.rolling_mean(window, min_samples=m)
    std = x.rolling_std(window, min_samples=m)
    return pl.when(std > 0).then((x - mean) / std)


def cs_z(col: str, by: str = "Date") -> pl.Expr:
    """Per-date cross-sectional z-score `<col>_cs_z`."""
    x = pl.col(col)
    std = x.std().over(by)
    return pl.when(std > 0).then((x - x.mean().over(by)) / std).alias(f"{col}_cs_z")


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is zero or null."""
    return pl.when(den != 0).then(num / den)


def asof_attach(
    lf: pl.LazyFrame, table: pl.LazyFrame, eff: str, by: str | list[str] | None, cols: list[str]
) -> pl.LazyFrame:
    """Backward as-of join of `table[cols]` on `eff` <= row Date (by key), keeping the row order."""
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    right = table.select(*keys, eff, *cols).sort(eff)
    return (
        lf.with_row_index("_row_aa")
        .sort("Date")
        .join_asof(right, left_on="Date", right_on=eff, by=keys or None, strategy="backward", check_sortedness=False)
        .sort("_row_aa")
        .drop("_row_aa")
    )
