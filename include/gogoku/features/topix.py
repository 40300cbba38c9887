"""TOPIX market features `mkt_*` (one row per Date) and stock x market features.

The TOPIX series is known at the close of its Date, so a market row joins on the same Date.
The indicators (EMA, ATR, RSI, ADX, MACD, Bollinger) are those of `gogoku.features.technical`
(TA-Lib's definitions; EMA60 and EMA200 windowed over 250 sessions) run over the single TOPIX series.

Bounded memory (gogoku.features.memory): a row of D reads at most MEMORY_SESSIONS = 260 TOPIX
sessions. Time-series z-scores `mkt_*_z` (and the sector group's) take the last Z_WINDOW = 240 values
(at least 126) of inputs that read at most Z_INPUT_SESSIONS = 21 sessions each: 240 + 21 - 1 = 260.
Their inputs are therefore seed-free: `mkt_natr_14_z` is the z-score of the NATR with a 14-session
SIMPLE mean of the true range, `mkt_rsi_14_z` of Cutler's RSI (14-session simple means of the gains
and losses), `mkt_ema_gap_5_20_z` of the gap of EWMA5 / EWMA20 windowed over 21 sessions. With
TA-Lib's Wilder / EMA recursions as inputs, the oldest values of the z window (240 sessions back)
would still carry their seed (a Wilder 14 needs about 220 sessions to forget it below 1e-7), i.e.
depend on data up to 460 sessions back. The alternative, a longer TOPIX history for this group
only, would keep TA-Lib's inputs but needs the dataset build to pass TOPIX from before its lookback
(it cuts TOPIX where the quotes start) and a cache (and a plan) holding that history; the seed-free
inputs measure the same volatility, momentum and trend regimes within the memory every other group has.
"""

from __future__ import annotations

import polars as pl

from gogoku.features.price import ANNUALIZE, window
from gogoku.features.technical import (
    WINDOWED_EMAS,
    add_adx,
    add_atr,
    add_macd,
    add_rsi,
    add_seeded_ewm,
    add_windowed_ewm,
    bbands_pct_b_bw,
    rsi_from_averages,
    true_range,
)

MKT_RETURN_WINDOWS = (1, 5, 10, 20, 60)
MKT_EMA_WINDOWS = (5, 20, 60, 200)
Z_WINDOW = 240
Z_MIN_SAMPLES = 126
# The most sessions an input of a time-series z-score reads (a 20-session return or volatility).
Z_INPUT_SESSIONS = 21
Z_SOURCES = (
    "mkt_ret_1d", "mkt_ret_5d", "mkt_ret_20d", "mkt_vol_20d", "mkt_bb_bw", "mkt_natr_14", "mkt_rsi_14",
    "mkt_ema_gap_5_20",
)
# The seed-free input of the z-score of a smoothed series (see the module docstring).
Z_INPUTS = {"mkt_natr_14": "_z_natr_14", "mkt_rsi_14": "_z_rsi_14", "mkt_ema_gap_5_20": "_z_ema_gap_5_20"}

MARKET_FEATURES: tuple[str, ...] = (
    *[f"mkt_ret_{h}d" for h in MKT_RETURN_WINDOWS],
    "mkt_vol_20d",
    "mkt_vol_60d",
    "mkt_natr_14",
    "mkt_hl_range",
    *[f"mkt_price_to_ema{n}" for n in MKT_EMA_WINDOWS],
    "mkt_ema_gap_5_20",
    "mkt_ema_gap_20_60",
    "mkt_ema20_slope_3",
    "mkt_dd_from_peak",
    "mkt_bb_bw",
    "mkt_bb_pct_b",
    "mkt_rsi_14",
    "mkt_adx_14",
    "mkt_macd_hist_norm",
    *[f"{c}_z" for c in Z_SOURCES],
    "mkt_bull_200",
    "mkt_trend_up",
    "mkt_high_vol",
    "mkt_squeeze",
    "mkt_big_move",
    "mkt_bear_dd",
)

STOCK_MARKET_FEATURES: tuple[str, ...] = (
    "beta_60d",
    "beta_20d",
    "downside_beta_60d",
    "corr_mkt_60d",
    "beta_stability_60d",
    "alpha_1d",
    "alpha_5d",
    "alpha_20d",
    "alpha_vs_regime",
    "rel_strength_5d",
    "rel_strength_20d",
    "idio_vol_ratio",
    "vol_ratio_mkt_20",
    "trend_align_mkt",
    "is_beta_valid",
)


def ts_zscore(col: str, by: str | None = None) -> pl.Expr:
    x = pl.col(col)
    mean = window(x.rolling_mean(Z_WINDOW, min_samples=Z_MIN_SAMPLES), by)
    std = window(x.rolling_std(Z_WINDOW, min_samples=Z_MIN_SAMPLES), by)
    return pl.when(std > 0).then((x - mean) / std)


def flag(cond: pl.Expr) -> pl.Expr:
    """1.0 / 0.0, null while the condition's inputs are (a warm-up is not a "no")."""
    return cond.cast(pl.Float64)


def market_features(topix: pl.LazyFrame) -> pl.LazyFrame:
    """From TOPIX (Date, High, Low, Close) to one row per Date with `MARKET_FEATURES`."""
    c, h, lo = pl.col("Close"), pl.col("High"), pl.col("Low")
    pct_b, bw = bbands_pct_b_bw("Close", None)
    lf = (
        topix.select("Date", "High", "Low", "Close")
        .drop_nulls("Close")
        .unique("Date", keep="last")
        .sort("Date")
        .with_columns(
            *[(c / c.shift(n) - 1.0).alias(f"mkt_ret_{n}d") for n in MKT_RETURN_WINDOWS],
            ((h - lo) / c).alias("mkt_hl_range"),
            bw.alias("mkt_bb_bw"),
            pct_b.alias("mkt_bb_pct_b"),
            # Drawdown from the 252-session high, so that it does not depend on where history starts.
            (c / c.rolling_max(252) - 1.0).alias("mkt_dd_from_peak"),
        )
    )
    for n in MKT_EMA_WINDOWS:
        if n in WINDOWED_EMAS:
            lf = add_windowed_ewm(lf, "Close", f"_ema{n}", n, by=None)
        else:
            lf = add_seeded_ewm(lf, "Close", f"_ema{n}", n, 2.0 / (n + 1), by=None)
    # The z-scores' seed-free inputs: windows of at most Z_INPUT_SESSIONS closes.
    for n in (5, 20):
        lf = add_windowed_ewm(lf, "Close", f"_wema{n}", n, Z_INPUT_SESSIONS, by=None)
    prev = c.shift(1)
    lf = lf.with_columns(
        (100.0 * true_range("High", "Low", "Close", None).rolling_mean(14) / c).alias(Z_INPUTS["mkt_natr_14"]),
        rsi_from_averages((c - prev).clip(lower_bound=0.0).rolling_mean(14),
                          (prev - c).clip(lower_bound=0.0).rolling_mean(14)).alias(Z_INPUTS["mkt_rsi_14"]),
        (pl.col("_wema5") / pl.col("_wema20") - 1.0).alias(Z_INPUTS["mkt_ema_gap_5_20"]),
    )
    lf = add_atr(lf, "High", "Low", "Close", 14, "_atr14", by=None)
    lf = add_rsi(lf, "Close", 14, "mkt_rsi_14", by=None)
    lf = add_adx(lf, "High", "Low", "Close", 14, adx="mkt_adx_14", by=None)
    lf = add_macd(lf, "Close", out="_macd", signal_out="_macd_signal", hist_out="_macd_hist", by=None)
    ret1 = pl.col("mkt_ret_1d")
    lf = lf.with_columns(
        (ret1.rolling_std(20) * ANNUALIZE).alias("mkt_vol_20d"),
        (ret1.rolling_std(60) * ANNUALIZE).alias("mkt_vol_60d"),
        (100.0 * pl.col("_atr14") / c).alias("mkt_natr_14"),
        *[(c / pl.col(f"_ema{n}")).alias(f"mkt_price_to_ema{n}") for n in MKT_EMA_WINDOWS],
        (pl.col("_ema5") / pl.col("_ema20") - 1.0).alias("mkt_ema_gap_5_20"),
        (pl.col("_ema20") / pl.col("_ema60") - 1.0).alias("mkt_ema_gap_20_60"),
        (pl.col("_ema20") / pl.col("_ema20").shift(3) - 1.0).alias("mkt_ema20_slope_3"),
        (pl.col("_macd_hist") / c).alias("mkt_macd_hist_norm"),
        flag(ret1.abs() >= 2.0 * ret1.rolling_std(60)).alias("mkt_big_move"),
    )
    lf = lf.with_columns(*[ts_zscore(Z_INPUTS.get(col, col)).alias(f"{col}_z") for col in Z_SOURCES])
    lf = lf.with_columns(
        flag(c > pl.col("_ema200")).alias("mkt_bull_200"),
        flag(pl.col("mkt_ema_gap_5_20") > 0).alias("mkt_trend_up"),
        flag(pl.col("mkt_vol_20d_z") > 1.0).alias("mkt_high_vol"),
        flag(pl.col("mkt_bb_bw_z") < -1.0).alias("mkt_squeeze"),
        flag(pl.col("mkt_dd_from_peak") < -0.1).alias("mkt_bear_dd"),
    )
    return lf.select("Date", *MARKET_FEATURES)


def rolling_beta(y: pl.Expr, x: pl.Expr, n: int, by: str | None) -> pl.Expr:
    """Cov(y, x) / Var(x) over the last n rows (null unless all n pairs are present)."""
    var = window(x.rolling_var(n), by)
    return pl.when(var > 0).then(window(pl.rolling_cov(y, x, window_size=n), by) / var)


def downside_beta(y: pl.Expr, x: pl.Expr, n: int, by: str | None, min_down: int = 10) -> pl.Expr:
    """Beta over the days of the last n on which the market fell (at least `min_down` of them)."""
    down = (x < 0).cast(pl.Float64)

    def s(e: pl.Expr) -> pl.Expr:
        return window(e.rolling_sum(n), by)

    k, sy, sx, sxy, sxx = s(down), s(down * y), s(down * x), s(down * x * y), s(down * x * x)
    var = sxx - sx * sx / k
    return pl.when((k >= min_down) & (var > 0)).then((sxy - sx * sy / k) / var)


def add_market_features(lf: pl.LazyFrame, topix: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Join `market_features(topix)` on Date, then add `STOCK_MARKET_FEATURES` per Code.

    Needs returns_{1,5,20}d, volatility_20d and ma_gap_5_20 from the price group; rows sorted by
    (Code, Date).
    """
    lf = lf.join(market_features(topix), on="Date", how="left", maintain_order="left")
    ret, mret = pl.col("returns_1d"), pl.col("mkt_ret_1d")
    lf = lf.with_columns(
        rolling_beta(ret, mret, 60, by).alias("beta_60d"),
        rolling_beta(ret, mret, 20, by).alias("beta_20d"),
        downside_beta(ret, mret, 60, by).alias("downside_beta_60d"),
        window(pl.rolling_corr(ret, mret, window_size=60), by).alias("corr_mkt_60d"),
        (pl.col("returns_5d") - pl.col("mkt_ret_5d")).alias("rel_strength_5d"),
        (pl.col("returns_20d") - pl.col("mkt_ret_20d")).alias("rel_strength_20d"),
        (pl.col("volatility_20d") / pl.col("mkt_vol_20d")).alias("vol_ratio_mkt_20"),
        pl.when(pl.col("ma_gap_5_20").is_not_null() & pl.col("mkt_ema_gap_5_20").is_not_null())
        .then(flag(pl.col("ma_gap_5_20").sign() == pl.col("mkt_ema_gap_5_20").sign()))
        .alias("trend_align_mkt"),
    )
    beta = pl.col("beta_60d")
    lf = lf.with_columns(
        (ret - beta * mret).alias("alpha_1d"),
        (pl.col("returns_5d") - beta * pl.col("mkt_ret_5d")).alias("alpha_5d"),
        (pl.col("returns_20d") - beta * pl.col("mkt_ret_20d")).alias("alpha_20d"),
        # 1 for a beta that did not move over the last 20 sessions, towards 0 as it swings.
        (1.0 / (1.0 + window(beta.rolling_std(20), by))).alias("beta_stability_60d"),
        flag(beta.is_not_null()).alias("is_beta_valid"),
    )
    # Share of 20-day volatility that the market does not explain.
    ret_sd = window(ret.rolling_std(20), by)
    return lf.with_columns(
        (pl.col("alpha_1d") * pl.col("mkt_bull_200")).alias("alpha_vs_regime"),
        pl.when(ret_sd > 0).then(window(pl.col("alpha_1d").rolling_std(20), by) / ret_sd).alias("idio_vol_ratio"),
    )
