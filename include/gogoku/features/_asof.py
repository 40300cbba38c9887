"""Helpers shared by the non-price feature groups: exchange-calendar shifts, as-of joins, z-scores.

Every shift counts the sessions of the offline JPX calendar (`gogoku.calendar`), holidays included,
never weekday arithmetic (which would count a holiday as a session).

Bounded memory (gogoku.features.memory): `asof_attach(..., max_age_days=)` attaches nothing older than
its bound, `recent_ts_z` takes only the publications of a bounded period, and `prev_within` compares
with a previous publication only when it is recent enough.
"""

from __future__ import annotations

import datetime as dt

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


def _keys(by: str | list[str] | None) -> list[str]:
    return [] if by is None else ([by] if isinstance(by, str) else list(by))


def asof_attach(
    lf: pl.LazyFrame, table: pl.LazyFrame, eff: str, by: str | list[str] | None, cols: list[str],
    max_age_days: int | None = None,
) -> pl.LazyFrame:
    """Backward as-of join of `table[cols]` on `eff` <= row Date (by key), keeping the row order.

    `max_age_days`: the latest row with `eff` in [Date - max_age_days, Date] attaches, an older one
    attaches nothing (null `eff` and `cols`), so that the row depends on a bounded past.
    """
    keys = _keys(by)
    right = table.select(*keys, eff, *cols).sort(eff)
    tolerance = None if max_age_days is None else dt.timedelta(days=max_age_days)
    return (
        lf.with_row_index("_row_aa")
        .sort("Date")
        .join_asof(right, left_on="Date", right_on=eff, by=keys or None, strategy="backward", check_sortedness=False,
                   tolerance=tolerance)
        .sort("_row_aa")
        .drop("_row_aa")
    )


def prev_within(x: pl.Expr, date: str, max_days: int, by: str | list[str] | None = None, n: int = 1) -> pl.Expr:
    """`x` of the n-th previous row of the series (rows sorted by `date` within `by`), null unless that
    row's `date` is at most `max_days` days before this row's."""
    keys = _keys(by)

    def over(e: pl.Expr) -> pl.Expr:
        return e.over(keys) if keys else e

    d = pl.col(date)
    recent = (d - over(d.shift(n))).dt.total_days() <= max_days
    return pl.when(recent).then(over(x.shift(n)))


def recent_ts_z(
    lf: pl.LazyFrame, x: pl.Expr, out: str, *, date: str, by: str | list[str] | None, window: int,
    min_samples: int, max_days: int,
) -> pl.LazyFrame:
    """Add `out`: the time-series z-score of `x` over the last `window` rows of its series (`by`) whose
    `date` is within (date - max_days, date] (the row's own included; rows dated like it count whatever
    their order), with at least `min_samples` non-null values and a non-zero spread.

    The row order is kept. A publication older than `max_days` never counts, so the z-score depends on
    the publications of a bounded period only, however many there were before.
    """
    keys = _keys(by)
    tmp = f"_{out}_x"
    lf = lf.with_columns(x.alias(tmp))
    v = pl.col(tmp).tail(window)
    stats = (
        lf.select(*keys, date, tmp)
        .drop_nulls(date)  # a row without a date (e.g. effective after the calendar's end) gets no z-score
        .sort(*keys, date, maintain_order=True)
        .rolling(index_column=date, period=f"{max_days}d", group_by=keys or None)
        .agg(v.mean().alias("_rz_mean"), v.std().alias("_rz_std"), v.count().alias("_rz_n"))
        .unique([*keys, date], keep="last", maintain_order=True)
    )
    mean, std = pl.col("_rz_mean"), pl.col("_rz_std")
    return (
        lf.join(stats, on=[*keys, date], how="left", maintain_order="left", nulls_equal=False)
        .with_columns(
            pl.when((pl.col("_rz_n") >= min_samples) & (std > 0)).then((pl.col(tmp) - mean) / std).alias(out)
        )
        .drop(tmp, "_rz_mean", "_rz_std", "_rz_n")
    )
