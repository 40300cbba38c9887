"""TOPIX market features `mkt_*` (one row per Date) and stock x market features (reference section 3).

The TOPIX series is known at the close of its Date, so a market row joins on the same Date.
Time-series z-scores `mkt_*_z` use a 252-session window with at least 126 observations.
"""

from __future__ import annotations

import polars as pl

from gogoku.features.price import ANNUALIZE, add_seeded_ewm, window

MKT_RETURN_WINDOWS = (1, 5, 10, 20)
MKT_EMA_WINDOWS = (5, 20, 60, 200)
Z_WINDOW = 252
Z_MIN_SAMPLES = 126
Z_SOURCES = ("mkt_ret_1d", "mkt_ret_5d", "mkt_vol_20d", "mkt_bb_bw")

MARKET_FEATURES: tuple[str, ...] = (
    *[f"mkt_ret_{h}d" for h in MKT_RETURN_WINDOWS],
    "mkt_vol_20d",
    "mkt_natr_14",
    *[f"mkt_price_to_ema{n}" for n in MKT_EMA_WINDOWS],
    "mkt_ema_gap_5_20",
    "mkt_dd_from_peak",
    "mkt_bb_bw",
    *[f"{c}_z" for c in Z_SOURCES],
    "mkt_bull_200",
    "mkt_high_vol",
    "mkt_squeeze",
)

STOCK_MARKET_FEATURES: tuple[str, ...] = (
    "beta_60d",
    "corr_mkt_60d",
    "alpha_1d",
    "rel_strength_5d",
    "idio_vol_ratio",
    "is_beta_valid",
)


def ts_zscore(col: str, by: str | None = None) -> pl.Expr:
    x = pl.col(col)
    mean = window(x.rolling_mean(Z_WINDOW, min_samples=Z_MIN_SAMPLES), by)
    std = window(x.rolling_std(Z_WINDOW, min_samples=Z_MIN_SAMPLES), by)
    return pl.when(std > 0).then((x - mean) / std)


def market_features(topix: pl.LazyFrame) -> pl.LazyFrame:
    """From TOPIX (Date, Open, High, Low, Close) to one row per Date with `MARKET_FEATURES`."""
    c, h, lo = pl.col("Close"), pl.col("High"), pl.col("Low")
    prev = c.shift(1)
    lf = (
        topix.select("Date", "High", "Low", "Close")
        .drop_nulls("Close")
        .unique("Date", keep="last")
        .sort("Date")
        .with_columns(
            *[(c / c.shift(n) - 1.0).alias(f"mkt_ret_{n}d") for n in MKT_RETURN_WINDOWS],
            pl.when(prev.is_not_null())
            .then(pl.max_horizontal(h - lo, (h - prev).abs(), (lo - prev).abs()))
            .alias("_tr"),
            (4.0 * c.rolling_std(20) / c.rolling_mean(20)).alias("mkt_bb_bw"),
            # Drawdown from the 252-session high, so that it does not depend on where history starts.
            (c / c.rolling_max(252) - 1.0).alias("mkt_dd_from_peak"),
        )
    )
    for n in MKT_EMA_WINDOWS:
        lf = add_seeded_ewm(lf, "Close", f"_ema{n}", n, 2.0 / (n + 1), by=None)
    lf = add_seeded_ewm(lf, "_tr", "_atr14", 14, 1.0 / 14, by=None)
    lf = lf.with_columns(
        (pl.col("mkt_ret_1d").rolling_std(20) * ANNUALIZE).alias("mkt_vol_20d"),
        (pl.col("_atr14") / c).alias("mkt_natr_14"),
        *[(c / pl.col(f"_ema{n}")).alias(f"mkt_price_to_ema{n}") for n in MKT_EMA_WINDOWS],
        (pl.col("_ema5") / pl.col("_ema20") - 1.0).alias("mkt_ema_gap_5_20"),
    )
    lf = lf.with_columns(*[ts_zscore(col).alias(f"{col}_z") for col in Z_SOURCES])
    # Flags stay null while their input is (a warm-up is not a "no").
    lf = lf.with_columns(
        (c > pl.col("_ema200")).cast(pl.Float64).alias("mkt_bull_200"),
        (pl.col("mkt_vol_20d_z") > 1.0).cast(pl.Float64).alias("mkt_high_vol"),
        (pl.col("mkt_bb_bw_z") < -1.0).cast(pl.Float64).alias("mkt_squeeze"),
    )
    return lf.select("Date", *MARKET_FEATURES)


def add_market_features(lf: pl.LazyFrame, topix: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Join `market_features(topix)` on Date, then add `STOCK_MARKET_FEATURES` per Code.

    Needs returns_1d and returns_5d from the price group; rows sorted by (Code, Date).
    """
    lf = lf.join(market_features(topix), on="Date", how="left", maintain_order="left")
    ret, mret = pl.col("returns_1d"), pl.col("mkt_ret_1d")
    lf = lf.with_columns(
        window(pl.rolling_cov(ret, mret, window_size=60), by).alias("_cov60"),
        window(mret.rolling_var(60), by).alias("_mvar60"),
        window(ret.rolling_var(60), by).alias("_svar60"),
    )
    lf = lf.with_columns(
        pl.when(pl.col("_mvar60") > 0).then(pl.col("_cov60") / pl.col("_mvar60")).alias("beta_60d"),
        pl.when((pl.col("_mvar60") > 0) & (pl.col("_svar60") > 0))
        .then(pl.col("_cov60") / (pl.col("_mvar60") * pl.col("_svar60")).sqrt())
        .alias("corr_mkt_60d"),
        (pl.col("returns_5d") - pl.col("mkt_ret_5d")).alias("rel_strength_5d"),
    )
    lf = lf.with_columns(
        (ret - pl.col("beta_60d") * mret).alias("alpha_1d"),
        pl.col("beta_60d").is_not_null().cast(pl.Float64).alias("is_beta_valid"),
    )
    # Share of 20-day volatility that the market does not explain.
    lf = lf.with_columns(
        pl.when(window(ret.rolling_std(20), by) > 0)
        .then(window(pl.col("alpha_1d").rolling_std(20), by) / window(ret.rolling_std(20), by))
        .alias("idio_vol_ratio")
    )
    return lf.drop("_cov60", "_mvar60", "_svar60")
