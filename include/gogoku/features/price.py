"""Price and volume features per Code from ADJUSTED daily bars (reference section 3, price group).

Input: v1 daily_quotes rows sorted by (Code, Date), one row per traded day (rows with a null
AdjustmentClose dropped beforehand). Every window runs over a Code's own rows with `.over(by)`, so a
window of n means n trading sessions of that stock. Windows are null until filled (min_samples =
window); `is_*_valid` flags mark the long windows. Unprefixed names follow the reference.

EMAs, Wilder RSI and ATR follow TA-Lib: the recursion is seeded with the simple mean of the first n
values, so they are null for the first n-1 inputs (see `add_seeded_ewm`).
"""

from __future__ import annotations

import math

import polars as pl

RETURN_WINDOWS = (1, 5, 10, 20, 60)
VOL_WINDOWS = (5, 10, 20, 60)
SMA_WINDOWS = (5, 10, 20, 60, 120)
EMA_WINDOWS = (5, 10, 20, 60, 200)
ANNUALIZE = math.sqrt(252.0)

_C = pl.col("AdjustmentClose")
_O = pl.col("AdjustmentOpen")
_H = pl.col("AdjustmentHigh")
_L = pl.col("AdjustmentLow")
_V = pl.col("AdjustmentVolume")


def window(expr: pl.Expr, by: str | None) -> pl.Expr:
    """`expr` per partition `by` (a Code), or over the whole frame for a single series (by=None)."""
    return expr.over(by) if by else expr


def add_seeded_ewm(
    lf: pl.LazyFrame, src: str, out: str, n: int, alpha: float, by: str | None = "Code"
) -> pl.LazyFrame:
    """Add `out`: EWM (y_t = (1-alpha) y_{t-1} + alpha x_t) seeded with the mean of the first n values.

    This is TA-Lib's definition for EMA (alpha = 2/(n+1)) and Wilder smoothing (alpha = 1/n): null
    until n non-null inputs are seen, the seed at the n-th, the recursion after it. Leading nulls of
    `src` (e.g. the first return of a series) are skipped.
    """
    seen = window(pl.col(src).is_not_null().cum_sum(), by)
    seed = window(pl.col(src).rolling_mean(n), by)
    lf = lf.with_columns(
        pl.when(seen == n).then(seed).when(seen > n).then(pl.col(src)).alias("_ewm_src")
    )
    return lf.with_columns(
        window(pl.col("_ewm_src").ewm_mean(alpha=alpha, adjust=False), by).alias(out)
    ).drop("_ewm_src")


def wilder_rsi(avg_gain: pl.Expr, avg_loss: pl.Expr) -> pl.Expr:
    # 100 * G / (G + L) == 100 - 100 / (1 + G/L); a flat window (G = L = 0) is neutral (50).
    total = avg_gain + avg_loss
    return pl.when(total > 0).then(100.0 * avg_gain / total).when(total == 0).then(50.0)


def price_features(quotes: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Add the price/volume feature columns (`PRICE_FEATURES`) to quotes sorted by (Code, Date)."""
    prev = window(_C.shift(1), by)
    lf = quotes.with_columns(
        *[(_C / window(_C.shift(h), by) - 1.0).alias(f"returns_{h}d") for h in RETURN_WINDOWS],
        (_C / prev).log().alias("log_returns_1d"),
        (_O / prev - 1.0).alias("ret_overnight"),
        (_C / _O - 1.0).alias("ret_intraday"),
        ((_H - _L) / _C).alias("hl_range"),
        pl.when(_H > _L).then((_C - _L) / (_H - _L)).alias("close_location"),
        *[window(_C.rolling_mean(n), by).alias(f"sma_{n}") for n in SMA_WINDOWS],
        (_C - prev).clip(lower_bound=0.0).alias("_gain"),
        (prev - _C).clip(lower_bound=0.0).alias("_loss"),
        # True range needs the previous close (TA-Lib starts it at the second bar).
        pl.when(prev.is_not_null())
        .then(pl.max_horizontal(_H - _L, (_H - prev).abs(), (_L - prev).abs()))
        .alias("_tr"),
        ((_H / _L).log() ** 2).alias("_park"),
        window(_H.rolling_max(14), by).alias("_hh14"),
        window(_L.rolling_min(14), by).alias("_ll14"),
        window(_C.rolling_std(20), by).alias("_std20"),
        (_V / window(_V.rolling_mean(5), by)).alias("volume_ratio_5"),
        (_V / window(_V.rolling_mean(20), by)).alias("volume_ratio_20"),
        window(pl.col("TurnoverValue").rolling_mean(20), by).alias("_adv20"),
        (pl.col("UpperLimit") == "1").cast(pl.Float64).alias("limit_up"),
        (pl.col("LowerLimit") == "1").cast(pl.Float64).alias("limit_down"),
    )
    for n in EMA_WINDOWS + (12, 26):
        lf = add_seeded_ewm(lf, "AdjustmentClose", f"ema_{n}", n, 2.0 / (n + 1), by)
    for n in (2, 14):
        lf = add_seeded_ewm(lf, "_gain", f"_avg_gain{n}", n, 1.0 / n, by)
        lf = add_seeded_ewm(lf, "_loss", f"_avg_loss{n}", n, 1.0 / n, by)
    lf = add_seeded_ewm(lf, "_tr", "_atr14", 14, 1.0 / 14, by)
    # MACD in units of the close so that it compares across stocks.
    lf = lf.with_columns(((pl.col("ema_12") - pl.col("ema_26")) / _C).alias("macd"))
    lf = add_seeded_ewm(lf, "macd", "macd_signal", 9, 2.0 / 10, by)

    ret1 = pl.col("returns_1d")
    lf = lf.with_columns(
        *[(window(ret1.rolling_std(n), by) * ANNUALIZE).alias(f"volatility_{n}d") for n in VOL_WINDOWS],
        # Parkinson: var = E[ln(H/L)^2] / (4 ln 2) per day.
        (window(pl.col("_park").rolling_mean(20), by) / (4.0 * math.log(2.0)) * 252.0)
        .sqrt()
        .alias("realized_vol_20"),
        *[(_C / pl.col(f"sma_{n}")).alias(f"price_to_sma{n}") for n in SMA_WINDOWS],
        *[(_C / pl.col(f"ema_{n}")).alias(f"price_to_ema{n}") for n in EMA_WINDOWS],
        (pl.col("sma_5") / pl.col("sma_20") - 1.0).alias("ma_gap_5_20"),
        wilder_rsi(pl.col("_avg_gain2"), pl.col("_avg_loss2")).alias("rsi_2"),
        wilder_rsi(pl.col("_avg_gain14"), pl.col("_avg_loss14")).alias("rsi_14"),
        (pl.col("macd") - pl.col("macd_signal")).alias("macd_hist"),
        pl.when(pl.col("_std20") > 0)
        .then((_C - pl.col("sma_20") + 2.0 * pl.col("_std20")) / (4.0 * pl.col("_std20")))
        .alias("bb_pct_b"),
        (4.0 * pl.col("_std20") / pl.col("sma_20")).alias("bb_bw"),
        (pl.col("_atr14") / _C).alias("natr_14"),
        pl.when(pl.col("_hh14") > pl.col("_ll14"))
        .then(100.0 * (_C - pl.col("_ll14")) / (pl.col("_hh14") - pl.col("_ll14")))
        .alias("stoch_k"),
        (pl.col("TurnoverValue") / pl.col("_adv20")).alias("turnover_ratio_20"),
        (pl.col("_adv20") + 1.0).log().alias("log_turnover_20"),
        # Amihud illiquidity: mean |return| per 100M yen traded.
        window((ret1.abs() / pl.col("TurnoverValue") * 1e8).rolling_mean(20), by).alias("amihud_20"),
        pl.col("returns_60d").is_not_null().cast(pl.Float64).alias("is_returns60_valid"),
        pl.col("sma_120").is_not_null().cast(pl.Float64).alias("is_sma120_valid"),
        pl.col("ema_200").is_not_null().cast(pl.Float64).alias("is_ema200_valid"),
    )
    return lf.drop(pl.col("^_.*$"), "ema_12", "ema_26")


PRICE_FEATURES: tuple[str, ...] = (
    *[f"returns_{h}d" for h in RETURN_WINDOWS],
    "log_returns_1d",
    *[f"volatility_{n}d" for n in VOL_WINDOWS],
    "realized_vol_20",
    *[f"sma_{n}" for n in SMA_WINDOWS],
    *[f"price_to_sma{n}" for n in SMA_WINDOWS],
    *[f"ema_{n}" for n in EMA_WINDOWS],
    *[f"price_to_ema{n}" for n in EMA_WINDOWS],
    "ma_gap_5_20",
    "rsi_2",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pct_b",
    "bb_bw",
    "natr_14",
    "stoch_k",
    "volume_ratio_5",
    "volume_ratio_20",
    "turnover_ratio_20",
    "log_turnover_20",
    "amihud_20",
    "ret_overnight",
    "ret_intraday",
    "hl_range",
    "close_location",
    "limit_up",
    "limit_down",
    "is_returns60_valid",
    "is_sma120_valid",
    "is_ema200_valid",
)
