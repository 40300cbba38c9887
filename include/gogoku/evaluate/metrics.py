"""Cross-sectional evaluation: daily IC / RankIC, ICIR, hit rates, quantile long-short portfolios
(gross and net of trading costs), moving-block bootstrap confidence intervals and IC decay.

Every statistic is per date over the names with both a prediction and a target (nulls and NaNs
dropped); days with fewer than `min_names` such names are left out (default 20).

The h-day long-short portfolio. `target_{h}d` on date t is the return over the h sessions after t,
so the daily series of h-day long-short returns overlaps h-fold: its mean is fine but its std, its
Sharpe and any confidence interval built on it as if it were independent are not. The portfolio
statistics here are therefore those of real, non-overlapping strategies: sub-portfolio `o`
(o = 0..h-1) rebalances on the sessions whose index i (among the evaluated frame's dates) has
i mod h == o, holds for h sessions, and earns that date's h-day return. Each sub-portfolio's return
series has no overlap; its annualized return is mean * 252 / h and its Sharpe mean / std *
sqrt(252 / h). The reported figures are the averages over the h sub-portfolios (all dates are used,
none depends on an arbitrary start). A book holding 1/h in each sub-portfolio earns the same mean
return with no more volatility than the average sub-portfolio, so its Sharpe is typically higher:
the reported average Sharpe is the conservative figure. Turnover at a rebalance is sum_i |w_i(new) - w_i(old)|
over the target weights (+1/n_long on the top quantile, -1/n_short on the bottom, gross exposure 2;
drift inside the holding period is ignored); the first rebalance builds the book from nothing
(turnover 2). A one-way cost of `cost_bps` is charged on every unit traded: net = gross -
cost_bps / 1e4 * turnover.

`ls_sharpe` (kept for comparison with older runs) is the Sharpe of the overlapping daily series,
scaled by sqrt(252 / h).

Confidence intervals come from a moving-block bootstrap (fixed seed): blocks of `block_length`
consecutive days (at least h, so each block spans the target's own overlap) for the daily IC
series; for the portfolio, blocks of consecutive h-session rows of the (period x sub-portfolio)
return matrix, resampled together so the sub-portfolios' correlation is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from gogoku.errors import InputError

log = logging.getLogger(__name__)

FrameLike = pl.DataFrame | pl.LazyFrame


def _check_columns(lf: pl.LazyFrame, *cols: str) -> None:
    columns = lf.collect_schema().names()
    for col in cols:
        if col not in columns:
            raise InputError(f"column {col!r} is not in the frame (columns: {', '.join(columns)})")


def _pairs(
    frame: FrameLike, pred_col: str, target_col: str, date_col: str, min_names: int, keep: Sequence[str] = ()
) -> pl.LazyFrame:
    """Rows with a finite prediction and target, on days with at least `min_names` of them."""
    if min_names < 2:
        raise InputError(f"min_names must be >= 2, got {min_names}")
    lf = frame.lazy()
    _check_columns(lf, date_col, pred_col, target_col, *keep)
    return (
        lf.select(
            pl.col(date_col),
            *[pl.col(c) for c in keep],
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


def _bucket(date_col: str, quantiles: int) -> pl.Expr:
    """Prediction quantile of a row among its date's rows: 0 (bottom) .. quantiles - 1 (top)."""
    if quantiles < 2:
        raise InputError(f"quantiles must be >= 2, got {quantiles}")
    pos = (pl.col("_pred").rank("average").over(date_col) - 0.5) / pl.len().over(date_col)
    return (pos * quantiles).floor().clip(0, quantiles - 1).cast(pl.Int32)


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
    target = pl.col("_target")
    return (
        _pairs(frame, pred_col, target_col, date_col, min_names)
        .with_columns(_bucket(date_col, quantiles).alias("_bucket"))
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


def sign_hit_rate(
    frame: FrameLike, pred_col: str, target_col: str, date_col: str = "Date", min_names: int = 20
) -> float:
    """Share of rows where the prediction and the target fall on the same side of their date's
    cross-sectional median (rows exactly at a median are left out); 0.5 is no skill.

    Against the median rather than zero: a cross-sectional model ranks names within a day, and the
    raw sign of returns is mostly the market's move that day.
    """
    pred, target = pl.col("_pred"), pl.col("_target")
    side_pred = (pred - pred.median().over(date_col)).sign()
    side_target = (target - target.median().over(date_col)).sign()
    out = (
        _pairs(frame, pred_col, target_col, date_col, min_names)
        .select(side_pred.alias("p"), side_target.alias("t"))
        .filter((pl.col("p") != 0) & (pl.col("t") != 0))
        .select((pl.col("p") == pl.col("t")).mean().alias("hit"), pl.len().alias("n"))
        .collect()
    )
    return float(out["hit"][0]) if out["n"][0] else math.nan


def long_short_periods(
    frame: FrameLike,
    pred_col: str,
    target_col: str,
    horizon_days: int,
    date_col: str = "Date",
    code_col: str = "Code",
    quantiles: int = 5,
    min_names: int = 20,
    cost_bps: float = 10.0,
) -> pl.DataFrame:
    """The non-overlapping h-day long-short sub-portfolios (see the module docstring).

    One row per rebalance: `offset` (sub-portfolio, 0..h-1), `period` (index // h, the row of the
    period x offset matrix), `Date`, `n_long`, `n_short`, `gross` (the date's h-day long-short
    return), `turnover` (sum of absolute weight changes against the sub-portfolio's previous
    rebalance, or from nothing at its first), `net` = gross - cost_bps / 1e4 * turnover.
    Session indices count the frame's distinct dates, so a date without enough names leaves a gap
    (and the next rebalance of that sub-portfolio trades against the one before the gap).
    """
    if horizon_days < 1:
        raise InputError(f"horizon_days must be >= 1, got {horizon_days}")
    if cost_bps < 0:
        raise InputError(f"cost_bps must be >= 0, got {cost_bps}")
    lf = frame.lazy()
    sessions = (
        lf.select(pl.col(date_col).unique().sort())
        .with_row_index("_idx")
        .with_columns(
            (pl.col("_idx") % horizon_days).cast(pl.Int32).alias("offset"),
            (pl.col("_idx") // horizon_days).cast(pl.Int32).alias("period"),
        )
        .drop("_idx")
    )
    bucket = pl.col("_bucket")
    top, bottom = bucket == quantiles - 1, bucket == 0
    weight = (
        pl.when(top).then(1.0 / top.sum().over(date_col))
        .when(bottom).then(-1.0 / bottom.sum().over(date_col))
        .otherwise(0.0)
    )
    held = (
        _pairs(lf, pred_col, target_col, date_col, min_names, keep=[code_col])
        .with_columns(_bucket(date_col, quantiles).alias("_bucket"))
        .with_columns(weight.alias("_w"))
        .filter(pl.col("_w") != 0)
        .join(sessions, on=date_col, how="inner")
        # j: the sub-portfolio's own rebalance count, so a gap does not look like a fresh start.
        .with_columns((pl.col("period").rank("dense").over("offset") - 1).cast(pl.Int32).alias("_j"))
    )
    gross = held.group_by("offset", "period", "_j", date_col).agg(
        top.sum().cast(pl.Int64).alias("n_long"),
        bottom.sum().cast(pl.Int64).alias("n_short"),
        (pl.col("_w") * pl.col("_target")).sum().alias("gross"),
    )
    previous = held.select(
        "offset", (pl.col("_j") + 1).alias("_j"), code_col, pl.col("_w").alias("_w_prev")
    )
    turnover = (
        held.select("offset", "_j", code_col, "_w")
        .join(previous, on=["offset", "_j", code_col], how="full", coalesce=True)
        .group_by("offset", "_j")
        .agg((pl.col("_w").fill_null(0.0) - pl.col("_w_prev").fill_null(0.0)).abs().sum().alias("turnover"))
    )
    return (
        gross.join(turnover, on=["offset", "_j"], how="left")
        .with_columns((pl.col("gross") - cost_bps / 1e4 * pl.col("turnover")).alias("net"))
        .select("offset", "period", date_col, "n_long", "n_short", "gross", "turnover", "net")
        .sort(date_col)
        .collect()
    )


def _period_matrix(periods: pl.DataFrame, column: str, horizon_days: int) -> np.ndarray:
    """(period x offset) matrix of one return column, NaN where a sub-portfolio did not trade."""
    if periods.is_empty():
        return np.empty((0, horizon_days))
    wide = periods.pivot(on="offset", index="period", values=column, sort_columns=True).sort("period")
    cols = [str(o) for o in range(horizon_days)]
    wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in cols if c not in wide.columns)
    return wide.select(pl.col(cols).cast(pl.Float64)).to_numpy().astype(np.float64)


def _sharpe_of_matrix(values: np.ndarray, periods_per_year: float) -> np.ndarray:
    """`values` is (..., periods, offsets): each offset's Sharpe over the periods axis (NaN cells
    skipped), averaged over the offsets that have one. NaN where none has two periods and a
    positive std."""
    with np.errstate(invalid="ignore", divide="ignore"):
        count = np.sum(np.isfinite(values), axis=-2)
        mean = np.nansum(values, axis=-2) / np.where(count > 0, count, np.nan)
        dev = np.where(np.isfinite(values), values - np.expand_dims(mean, -2), 0.0)
        std = np.sqrt(np.sum(dev**2, axis=-2) / np.where(count > 1, count - 1, np.nan))
        sharpe = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1e-300), mean / std, np.nan)
        sharpe = sharpe * math.sqrt(periods_per_year)
        ok = np.isfinite(sharpe)
        return np.where(ok.any(axis=-1), np.nansum(np.where(ok, sharpe, 0.0), axis=-1) / ok.sum(axis=-1), np.nan)


def portfolio_summary(
    periods: pl.DataFrame, horizon_days: int, periods_per_year: int = 252
) -> dict[str, float | int]:
    """Annualized return and Sharpe, gross and net, averaged over the sub-portfolios of
    `long_short_periods`; mean turnover per rebalance; the number of rebalances."""
    per_year = periods_per_year / horizon_days
    out: dict[str, float | int] = {"ls_rebalances": periods.height}
    for kind in ("gross", "net"):
        matrix = _period_matrix(periods, kind, horizon_days)
        with np.errstate(invalid="ignore"):
            means = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in matrix.T])
        out[f"ls_ann_return_{kind}"] = float(np.nanmean(means) * per_year) if np.isfinite(means).any() else math.nan
        out[f"ls_sharpe_{kind}"] = float(_sharpe_of_matrix(matrix, per_year))
    out["ls_turnover"] = float(periods["turnover"].mean()) if periods.height else math.nan  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class Bootstrap:
    """Moving-block bootstrap settings: `resamples` draws (0 = no intervals), blocks of
    `block_length` days, percentile intervals at `level`, a fixed `seed`."""

    resamples: int = 1000
    block_length: int = 10
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 0 or self.block_length < 1 or not 0 < self.level < 1:
            raise InputError(
                f"bootstrap: resamples >= 0, block_length >= 1 and 0 < level < 1 required, got {asdict(self)}"
            )


def block_bootstrap_ci(
    values: np.ndarray | Sequence[float],
    statistic: Callable[[np.ndarray], np.ndarray],
    block_length: int,
    config: Bootstrap = Bootstrap(),
) -> tuple[float, float]:
    """Percentile interval of `statistic` over moving-block resamples of `values` along axis 0.

    Each resample joins ceil(n / block_length) blocks of consecutive rows, each starting at a
    uniform position in 0..n - block_length, cut to n rows. `statistic` maps an array of shape
    (resamples, n, ...) to one value per resample. NaN bounds with fewer than two rows or no draws.
    """
    data = np.asarray(values, dtype=np.float64)
    n = data.shape[0] if data.ndim else 0
    if n < 2 or config.resamples == 0:
        return math.nan, math.nan
    block = min(max(block_length, 1), n)
    rng = np.random.default_rng(config.seed)
    n_blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(config.resamples, n_blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(config.resamples, -1)[:, :n]
    stats = np.asarray(statistic(data[index]), dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    tail = (1 - config.level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)


def _interval(bounds: tuple[float, float]) -> list[float | None]:
    """[low, high] for JSON: an undefined bound is None (metrics.json stays strict JSON)."""
    return [b if math.isfinite(b) else None for b in bounds]


def _mean_stat(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def _ratio_stat(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        std = x.std(axis=1, ddof=1)
        return np.where(std > 0, x.mean(axis=1) / std, np.nan)


def ic_intervals(daily: pl.DataFrame, horizon_days: int, config: Bootstrap = Bootstrap()) -> dict[str, list[float | None]]:
    """Bootstrap intervals of the mean RankIC, the ICIR and the RankIC IR from `daily_ic` output,
    in blocks of max(block_length, h) days."""
    block = max(config.block_length, horizon_days)
    rank = daily["rank_ic"].drop_nulls().to_numpy()
    ic = daily["ic"].drop_nulls().to_numpy()
    return {
        "rank_ic_mean_ci": _interval(block_bootstrap_ci(rank, _mean_stat, block, config)),
        "rank_icir_ci": _interval(block_bootstrap_ci(rank, _ratio_stat, block, config)),
        "icir_ci": _interval(block_bootstrap_ci(ic, _ratio_stat, block, config)),
    }


def portfolio_intervals(
    periods: pl.DataFrame, horizon_days: int, config: Bootstrap = Bootstrap(), periods_per_year: int = 252
) -> dict[str, list[float | None]]:
    """Bootstrap intervals of the gross and net Sharpe of `portfolio_summary`: whole rows of the
    (period x sub-portfolio) matrix, in blocks of max(2, ceil(block_length / h)) periods."""
    block = max(2, -(-config.block_length // horizon_days))
    per_year = periods_per_year / horizon_days
    out: dict[str, list[float | None]] = {}
    for kind in ("gross", "net"):
        matrix = _period_matrix(periods, kind, horizon_days)
        out[f"ls_sharpe_{kind}_ci"] = _interval(
            block_bootstrap_ci(matrix, lambda x: _sharpe_of_matrix(x, per_year), block, config)
        )
    return out


def forward_return_lags(
    keys: FrameLike,
    returns: FrameLike,
    lags: Sequence[int],
    date_col: str = "Date",
    code_col: str = "Code",
    ret_col: str = "ret",
) -> pl.LazyFrame:
    """`keys`' rows once per lag, with `lag` and `realized`: the one-session return realized `lag`
    sessions after Date, i.e. the forward return `ret` of `returns` (a session's close to the next
    close) on the session lag - 1 after Date. Sessions are the distinct dates of `returns`; rows
    whose Date is not one of them, or whose name has no return on that session, are dropped."""
    if not lags or min(lags) < 1:
        raise InputError(f"lags must be >= 1, got {list(lags)}")
    rets = returns.lazy()
    _check_columns(rets, date_col, code_col, ret_col)
    sessions = rets.select(pl.col(date_col).unique().sort()).with_row_index("_idx")
    sessions = sessions.with_columns(pl.col("_idx").cast(pl.Int64))
    realized = rets.join(sessions, on=date_col).select(
        code_col, pl.col("_idx").alias("_at"), pl.col(ret_col).cast(pl.Float64).alias("realized")
    )
    lag_frame = pl.LazyFrame({"lag": list(lags)}, schema={"lag": pl.Int64})
    return (
        keys.lazy()
        .join(sessions, on=date_col)
        .join(lag_frame, how="cross")
        .with_columns((pl.col("_idx") + pl.col("lag") - 1).alias("_at"))
        .join(realized, on=[code_col, "_at"], how="inner")
        .drop("_idx", "_at")
    )


def ic_decay(
    frame: FrameLike,
    pred_col: str,
    returns: FrameLike,
    lags: Sequence[int] = tuple(range(1, 21)),
    date_col: str = "Date",
    code_col: str = "Code",
    ret_col: str = "ret",
    min_names: int = 20,
) -> pl.DataFrame:
    """Per lag k: the mean daily RankIC of `pred_col` (dated t) against the one-session return
    realized k sessions later (t+k-1 close to t+k close), and the number of days. A signal for
    horizon h that is real should hold up over lags 1..h and fade after."""
    lf = frame.lazy()
    _check_columns(lf, date_col, code_col, pred_col)
    joined = forward_return_lags(lf.select(date_col, code_col, pred_col), returns, lags, date_col, code_col, ret_col)
    pred, target = pl.col("_pred"), pl.col("_target")
    daily = (
        joined.select(
            "lag", date_col,
            pl.col(pred_col).cast(pl.Float64).fill_nan(None).alias("_pred"),
            pl.col("realized").fill_nan(None).alias("_target"),
        )
        .drop_nulls()
        .filter(pl.len().over("lag", date_col) >= min_names)
        .group_by("lag", date_col)
        .agg(pl.corr(pred.rank("average"), target.rank("average")).alias("rank_ic"))
        .with_columns(pl.col("rank_ic").fill_nan(None))
    )
    out = (
        pl.LazyFrame({"lag": list(lags)}, schema={"lag": pl.Int64})
        .join(
            daily.group_by("lag").agg(
                pl.col("rank_ic").mean().alias("rank_ic_mean"), pl.col("rank_ic").count().cast(pl.Int64).alias("n_days")
            ),
            on="lag",
            how="left",
        )
        .with_columns(pl.col("n_days").fill_null(0))
        .sort("lag")
        .collect()
    )
    return out


def evaluate_predictions(
    frame: FrameLike,
    pred_col: str,
    target_col: str,
    horizon_days: int,
    date_col: str = "Date",
    min_names: int = 20,
    quantiles: int = 5,
    *,
    code_col: str = "Code",
    cost_bps: float = 10.0,
    bootstrap: Bootstrap | None = Bootstrap(),
    periods_per_year: int = 252,
) -> dict[str, Any]:
    """IC / RankIC statistics, hit rates, the overlapping daily long-short mean and Sharpe
    (`ls_mean`, `ls_sharpe`) and, when the frame has `code_col`, the non-overlapping sub-portfolio
    figures gross and net of `cost_bps` (`ls_ann_return_gross|net`, `ls_sharpe_gross|net`,
    `ls_turnover`, `ls_rebalances`); with `bootstrap`, `*_ci` [low, high] intervals.
    Missing pieces are NaN, so every key is always present."""
    lf = frame.lazy()
    daily = daily_ic(lf, pred_col, target_col, date_col, min_names)
    summary: dict[str, Any] = ic_summary(daily)
    summary["sign_hit_rate"] = sign_hit_rate(lf, pred_col, target_col, date_col, min_names)
    ls = long_short_returns(lf, pred_col, target_col, date_col, quantiles, min_names)["ls"]
    finite = ls.fill_nan(None).drop_nulls()
    summary["ls_mean"] = float(finite.mean()) if finite.len() else math.nan  # type: ignore[arg-type]
    summary["ls_sharpe"] = annualized_sharpe(ls, horizon_days, periods_per_year)
    has_codes = code_col in lf.collect_schema().names()
    periods = (
        long_short_periods(lf, pred_col, target_col, horizon_days, date_col, code_col, quantiles, min_names, cost_bps)
        if has_codes
        else None
    )
    if periods is not None:
        summary.update(portfolio_summary(periods, horizon_days, periods_per_year))
    else:
        summary.update(dict.fromkeys(
            ("ls_ann_return_gross", "ls_sharpe_gross", "ls_ann_return_net", "ls_sharpe_net", "ls_turnover"), math.nan
        ))
        summary["ls_rebalances"] = 0
    summary["cost_bps"] = cost_bps
    if bootstrap is not None:
        summary.update(ic_intervals(daily, horizon_days, bootstrap))
        if periods is not None:
            summary.update(portfolio_intervals(periods, horizon_days, bootstrap, periods_per_year))
        else:
            summary.update({"ls_sharpe_gross_ci": [None, None], "ls_sharpe_net_ci": [None, None]})
    return summary


def staggered_book(periods: pl.DataFrame, date_col: str = "Date") -> pl.DataFrame:
    """Per row of the (period x sub-portfolio) matrix: its first rebalance `Date` and the mean
    `gross` and `net` h-day return over the sub-portfolios that traded. Their running sum is the
    summed return of a book that puts 1/h of its capital in each sub-portfolio."""
    return (
        periods.group_by("period")
        .agg(pl.col(date_col).min(), pl.col("gross").mean(), pl.col("net").mean())
        .sort("period")
    )


def json_clean(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics with non-finite floats as None (strict JSON)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}


def walk_forward_metrics(
    predictions: pl.DataFrame,
    horizons: Sequence[int],
    folds: Sequence[Mapping[str, Any]],
    fold_extra: Callable[[int, int], Mapping[str, Any]],
    **fold_options: Any,
) -> dict[str, Any]:
    """Per horizon: the test-fold statistics over every fold together, plus a `folds` list with each
    fold's own (with `fold_extra(h, i)` first and `fold_options` passed to its evaluation)."""
    per_horizon: dict[str, Any] = {}
    for h in horizons:
        pred, target = f"pred_{h}d", f"target_{h}d"
        overall = json_clean(evaluate_predictions(predictions, pred, target, h))
        overall["folds"] = [
            {"fold": info["fold"], **fold_extra(h, i),
             **json_clean(evaluate_predictions(predictions.filter(pl.col("fold") == info["fold"]), pred, target, h,
                                               **fold_options))}
            for i, info in enumerate(folds)
        ]
        per_horizon[f"{h}d"] = overall
        log.info("h=%dd: rank_ic_mean %.4f, ic_mean %.4f, ls_sharpe %.2f", h,
                 overall["rank_ic_mean"] or math.nan, overall["ic_mean"] or math.nan, overall["ls_sharpe"] or math.nan)
    return per_horizon
