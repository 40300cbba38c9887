"""Cross-sectional evaluation: daily IC / RankIC, ICIR, quantile long-short returns and Sharpe.

Every statistic is per date over the names with both a prediction and a target (nulls and NaNs
dropped); days with fewer than `min_names` such names are left out (reference: 20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from gogoku.errors import InputError

FrameLike = pl.DataFrame | pl.LazyFrame


def _pairs(frame: FrameLike, pred_col: str, target_col: str, date_col: str, min_names: int) -> pl.LazyFrame:
    """Rows with a finite prediction and target, on days with at least `min_names` of them."""
    if min_names < 2:
        raise InputError(f"min_names must be >= 2, got {min_names}")
    lf = frame.lazy()
    columns = lf.collect_schema().names()
    for col in (date_col, pred_col, target_col):
        if col not in columns:
            raise InputError(f"column {col!r} is not in the frame (columns: {', '.join(columns)})")
    return (
        lf.select(
            pl.col(date_col),
            pl.col(pred_col).cast(pl.Float64).fill_nan(None).alias("_pred"),
            pl.col(target_col).cast(pl.Float64).fill_nan(None).alias("_target"),
        )
        .drop_nulls()
        .filter(pl.len().over(date_col) >= min_names)
    )


def daily_ic(
    frame: FrameLike, pred_col: str, target_col: str, date_col: str = "Date", min_names: int = 20
) -> pl.DataFrame:
    """Per date: n, Pearson `ic` and Spearman `rank_ic` (Pearson of average-tie ranks).

    A day where the predictions or targets are constant has a null IC.
    """
    pred, target = pl.col("_pred"), pl.col("_target")
    return (
        _pairs(frame, pred_col, target_col, date_col, min_names)
        .group_by(date_col)
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.corr(pred, target).alias("ic"),
            pl.corr(pred.rank("average"), target.rank("average")).alias("rank_ic"),
        )
        .with_columns(pl.col("ic", "rank_ic").fill_nan(None))
        .sort(date_col)
        .collect()
    )


def _mean_std_ratio(values: pl.Series) -> tuple[float, float, float]:
    clean = values.cast(pl.Float64).fill_nan(None).drop_nulls()
    if clean.len() == 0:
        return math.nan, math.nan, math.nan
    mean = float(clean.mean())  # type: ignore[arg-type]
    std = float(clean.std()) if clean.len() > 1 else math.nan  # type: ignore[arg-type]
    # Equal values can leave a rounding-size std; their ratio is undefined, not huge.
    ratio = mean / std if std > 0 and clean.min() != clean.max() else math.nan
    return mean, std, ratio


def ic_summary(daily: pl.DataFrame) -> dict[str, float | int]:
    """Mean, sample std and mean/std of the daily IC and RankIC; hit_rate = share of days (with a
    RankIC) whose RankIC is positive; n_days = days evaluated."""
    ic_mean, ic_std, icir = _mean_std_ratio(daily["ic"])
    rank_mean, rank_std, rank_icir = _mean_std_ratio(daily["rank_ic"])
    rank = daily["rank_ic"].drop_nulls()
    return {
        "ic_mean": ic_mean,
        "ic_std": ic_std,
        "icir": icir,
        "rank_ic_mean": rank_mean,
        "rank_ic_std": rank_std,
        "rank_icir": rank_icir,
        "n_days": daily.height,
        "hit_rate": float((rank > 0).mean()) if rank.len() else math.nan,  # type: ignore[arg-type]
    }


def long_short_returns(
    frame: FrameLike,
    pred_col: str,
    target_col: str,
    date_col: str = "Date",
    quantiles: int = 5,
    min_names: int = 20,
) -> pl.DataFrame:
    """Per date: equal-weight mean target of the top (`long`) and bottom (`short`) prediction
    quantile, and `ls` = long - short.

    A name of average-tie rank r among n falls in bucket floor((r - 0.5) / n * quantiles): the
    buckets are symmetric (k names at the top <=> k at the bottom) and tied predictions share one.
    """
    if quantiles < 2:
        raise InputError(f"quantiles must be >= 2, got {quantiles}")
    pos = (pl.col("_pred").rank("average").over(date_col) - 0.5) / pl.len().over(date_col)
    bucket = (pos * quantiles).floor().clip(0, quantiles - 1).cast(pl.Int32)
    target = pl.col("_target")
    return (
        _pairs(frame, pred_col, target_col, date_col, min_names)
        .with_columns(bucket.alias("_bucket"))
        .group_by(date_col)
        .agg(
            target.filter(pl.col("_bucket") == quantiles - 1).mean().alias("long"),
            target.filter(pl.col("_bucket") == 0).mean().alias("short"),
        )
        .with_columns((pl.col("long") - pl.col("short")).alias("ls"))
        .sort(date_col)
        .collect()
    )


def annualized_sharpe(
    returns: pl.Series | Sequence[float], horizon_days: int = 1, periods_per_year: int = 252
) -> float:
    """mean / std * sqrt(periods_per_year / horizon_days), over the finite values.

    The returns are h-day forward returns observed every trading day, so consecutive values
    overlap; each is one h-day holding period, and a year holds periods_per_year / h of them, hence
    the scaling (the overlap leaves the mean and std estimates unbiased but makes them noisier).
    NaN when fewer than two values or a zero std.
    """
    if horizon_days < 1 or periods_per_year < 1:
        raise InputError(
            f"horizon_days and periods_per_year must be >= 1, got {horizon_days}, {periods_per_year}"
        )
    series = returns if isinstance(returns, pl.Series) else pl.Series(list(returns), dtype=pl.Float64)
    _, _, ratio = _mean_std_ratio(series)
    return ratio * math.sqrt(periods_per_year / horizon_days)


def evaluate_predictions(
    frame: FrameLike,
    pred_col: str,
    target_col: str,
    horizon_days: int,
    date_col: str = "Date",
    min_names: int = 20,
    quantiles: int = 5,
) -> dict[str, Any]:
    """IC / RankIC statistics plus the mean and annualized Sharpe of the daily long-short return."""
    lf = frame.lazy()
    summary: dict[str, Any] = ic_summary(daily_ic(lf, pred_col, target_col, date_col, min_names))
    ls = long_short_returns(lf, pred_col, target_col, date_col, quantiles, min_names)["ls"]
    finite = ls.fill_nan(None).drop_nulls()
    summary["ls_mean"] = float(finite.mean()) if finite.len() else math.nan  # type: ignore[arg-type]
    summary["ls_sharpe"] = annualized_sharpe(ls, horizon_days)
    return summary
