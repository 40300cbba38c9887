"""Price and volume features per Code from ADJUSTED daily bars (the price group).

Input: v1 daily_quotes rows sorted by (Code, Date), one row per traded day (rows with a null
AdjustmentClose dropped beforehand). Every window runs over a Code's own rows with `.over(by)`, so a
window of n means n trading sessions of that stock. Windows are null until filled (min_samples =
window); `is_*_valid` flags mark the long windows. The price group's names carry no group prefix.

The technical indicators (SMA, EMA, RSI, ATR, ADX, MACD, Bollinger, stochastic, MFI) come from
`gogoku.features.technical` and follow TA-Lib, but for EMA60 and EMA200 (and so `price_to_ema60`,
`price_to_ema200`, `is_ema200_valid`), windowed EWMAs over 250 sessions. Only bars up to each row's
Date are used, and at most the last 253 of them (`mom_12_1`; gogoku.features.memory).
"""

from __future__ import annotations

import math

import polars as pl

from gogoku.features.technical import (
    EMA_WINDOWS,
    SMA_WINDOWS,
    TECHNICAL_FEATURES,
    add_seeded_ewm,
    add_technical_features,
    differs,
    stoch_fast_k,
    window,
)

__all__ = ["ANNUALIZE", "PRICE_FEATURES", "add_seeded_ewm", "price_features", "window"]

RETURN_WINDOWS = (1, 5, 10, 20, 60, 120)
VOL_WINDOWS = (5, 10, 20, 60)
YEAR = 252  # sessions in a 52-week window
ANNUALIZE = math.sqrt(252.0)

_C = pl.col("AdjustmentClose")
_O = pl.col("AdjustmentOpen")
_H = pl.col("AdjustmentHigh")
_L = pl.col("AdjustmentLow")
_V = pl.col("AdjustmentVolume")


def rolling_z(x: pl.Expr, n: int, by: str | None) -> pl.Expr:
    """(x - mean) / std over the last n values of the series (null while the window is short or flat)."""
    std = window(x.rolling_std(n), by)
    return pl.when(std > 0).then((x - window(x.rolling_mean(n), by)) / std)


def price_features(quotes: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Add the price/volume feature columns (`PRICE_FEATURES`) to quotes sorted by (Code, Date)."""
    prev = window(_C.shift(1), by)
    log_turnover = (pl.col("TurnoverValue") + 1.0).log()
    lf = add_technical_features(quotes.lazy(), by)
    lf = lf.with_columns(
        *[(_C / window(_C.shift(h), by) - 1.0).alias(f"returns_{h}d") for h in RETURN_WINDOWS],
        (_C / prev).log().alias("log_returns_1d"),
        # Momentum that skips the last month (12-1 and 6-1 months in sessions).
        (window(_C.shift(21), by) / window(_C.shift(YEAR), by) - 1.0).alias("mom_12_1"),
        (window(_C.shift(21), by) / window(_C.shift(126), by) - 1.0).alias("mom_6_1"),
        (_O / prev - 1.0).alias("ret_overnight"),
        (_C / _O - 1.0).alias("ret_intraday"),
        ((_H - _L) / _C).alias("hl_range"),
        # Fast %K of a single bar / 100; a bar with no range (H = L) has no location.
        pl.when(differs(_H, _L)).then((_C - _L) / (_H - _L)).alias("close_location"),
        ((_H / _L).log() ** 2).alias("_park"),
        # Garman-Klass daily variance: 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2.
        (0.5 * (_H / _L).log() ** 2 - (2.0 * math.log(2.0) - 1.0) * (_C / _O).log() ** 2).alias("_gk"),
        (_V / window(_V.rolling_mean(5), by)).alias("volume_ratio_5"),
        (_V / window(_V.rolling_mean(20), by)).alias("volume_ratio_20"),
        (window(_V.rolling_mean(5), by) / window(_V.rolling_mean(20), by)).alias("volume_trend_5_20"),
        rolling_z((_V + 1.0).log(), 20, by).alias("volume_z_20"),
        rolling_z(log_turnover, 60, by).alias("dollar_volume_z_60"),
        window(pl.col("TurnoverValue").rolling_mean(20), by).alias("_adv20"),
        (_C / window(_H.rolling_max(YEAR), by) - 1.0).alias("dist_52w_high"),
        (_C / window(_L.rolling_min(YEAR), by) - 1.0).alias("dist_52w_low"),
        # Fast %K(252) / 100: where the close sits in its 52-week range.
        (stoch_fast_k("AdjustmentHigh", "AdjustmentLow", "AdjustmentClose", YEAR, by) / 100.0).alias("pos_52w"),
        (_C / window(_C.rolling_max(60), by) - 1.0).alias("drawdown_60d"),
        (pl.col("UpperLimit").cast(pl.Utf8) == "1").cast(pl.Float64).alias("limit_up"),
        (pl.col("LowerLimit").cast(pl.Utf8) == "1").cast(pl.Float64).alias("limit_down"),
    )
    ret1 = pl.col("returns_1d")
    std20 = window(ret1.rolling_std(20), by)
    lf = lf.with_columns(
        *[(window(ret1.rolling_std(n), by) * ANNUALIZE).alias(f"volatility_{n}d") for n in VOL_WINDOWS],
        # Parkinson: var = E[ln(H/L)^2] / (4 ln 2) per day.
        (window(pl.col("_park").rolling_mean(20), by) / (4.0 * math.log(2.0)) * 252.0).sqrt().alias("realized_vol_20"),
        (window(pl.col("_gk").rolling_mean(20), by).clip(lower_bound=0.0) * 252.0).sqrt().alias("gk_vol_20"),
        (window((ret1.clip(upper_bound=0.0) ** 2).rolling_mean(20), by) * 252.0).sqrt().alias("downside_vol_20"),
        (window(pl.col("ret_overnight").rolling_std(20), by) * ANNUALIZE).alias("overnight_vol_20"),
        (window(pl.col("ret_intraday").rolling_std(20), by) * ANNUALIZE).alias("intraday_vol_20"),
        window(ret1.rolling_skew(20), by).alias("ret_skew_20"),
        window(ret1.rolling_kurtosis(20), by).alias("ret_kurt_20"),
        window(ret1.rolling_skew(60), by).alias("ret_skew_60"),
        window(ret1.rolling_max(20), by).alias("ret_max_20"),
        window(ret1.rolling_min(20), by).alias("ret_min_20"),
        window((ret1 > 0).cast(pl.Float64).rolling_mean(20), by).alias("up_ratio_20"),
        pl.when(std20 > 0).then(ret1 / std20).alias("ret_z_20"),
        pl.when(std20 > 0).then(window(ret1.rolling_mean(20), by) / std20).alias("sharpe_20"),
        window(pl.col("hl_range").rolling_mean(20), by).alias("hl_range_20"),
        *[(_C / pl.col(f"sma_{n}")).alias(f"price_to_sma{n}") for n in SMA_WINDOWS],
        *[(_C / pl.col(f"ema_{n}")).alias(f"price_to_ema{n}") for n in EMA_WINDOWS],
        (pl.col("sma_5") / pl.col("sma_20") - 1.0).alias("ma_gap_5_20"),
        (pl.col("sma_20") / pl.col("sma_60") - 1.0).alias("ma_gap_20_60"),
        (pl.col("ema_20") / window(pl.col("ema_20").shift(5), by) - 1.0).alias("ema20_slope_5"),
        # MACD and ATR in units of the close so that they compare across stocks.
        (pl.col("macd") / _C).alias("macd_norm"),
        (pl.col("macd_hist") / _C).alias("macd_hist_norm"),
        (pl.col("TurnoverValue") / pl.col("_adv20")).alias("turnover_ratio_20"),
        (pl.col("_adv20") + 1.0).log().alias("log_turnover_20"),
        # Amihud illiquidity: mean |return| per 100M yen traded.
        window((ret1.abs() / pl.col("TurnoverValue") * 1e8).rolling_mean(20), by).alias("amihud_20"),
        pl.col("returns_60d").is_not_null().cast(pl.Float64).alias("is_returns60_valid"),
        pl.col("returns_120d").is_not_null().cast(pl.Float64).alias("is_returns120_valid"),
        pl.col("sma_120").is_not_null().cast(pl.Float64).alias("is_sma120_valid"),
        pl.col("ema_200").is_not_null().cast(pl.Float64).alias("is_ema200_valid"),
        pl.col("dist_52w_high").is_not_null().cast(pl.Float64).alias("is_52w_valid"),
    )
    lf = lf.with_columns(
        (pl.col("volatility_5d") / pl.col("volatility_20d")).alias("vol_ratio_5_20"),
    )
    return lf.drop(pl.col("^_.*$"))


PRICE_FEATURES: tuple[str, ...] = (
    *[f"returns_{h}d" for h in RETURN_WINDOWS],
    "log_returns_1d",
    "mom_12_1",
    "mom_6_1",
    "ret_max_20",
    "ret_min_20",
    "up_ratio_20",
    "ret_z_20",
    "sharpe_20",
    *[f"volatility_{n}d" for n in VOL_WINDOWS],
    "realized_vol_20",
    "gk_vol_20",
    "downside_vol_20",
    "overnight_vol_20",
    "intraday_vol_20",
    "vol_ratio_5_20",
    "ret_skew_20",
    "ret_kurt_20",
    "ret_skew_60",
    *TECHNICAL_FEATURES,
    *[f"price_to_sma{n}" for n in SMA_WINDOWS],
    *[f"price_to_ema{n}" for n in EMA_WINDOWS],
    "ma_gap_5_20",
    "ma_gap_20_60",
    "ema20_slope_5",
    "macd_norm",
    "macd_hist_norm",
    "volume_ratio_5",
    "volume_ratio_20",
    "volume_trend_5_20",
    "volume_z_20",
    "turnover_ratio_20",
    "log_turnover_20",
    "dollar_volume_z_60",
    "amihud_20",
    "ret_overnight",
    "ret_intraday",
    "hl_range",
    "hl_range_20",
    "close_location",
    "dist_52w_high",
    "dist_52w_low",
    "pos_52w",
    "drawdown_60d",
    "limit_up",
    "limit_down",
    "is_returns60_valid",
    "is_returns120_valid",
    "is_sma120_valid",
    "is_ema200_valid",
    "is_52w_valid",
)
