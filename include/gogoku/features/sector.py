"""Sector membership (as of each row's Date) and sector features `sec_*`.

Sector rolling windows run over a DAILY SECTOR SERIES, never over the members' stacked rows (where
a window of n rows would mix stocks and cover an unknown number of days): the members' returns are
first reduced to one row per (Date, Sector33Code) (the median return, the equal-weight mean, breadth
and dispersion of that day's members), the windows run over that series sorted by Date, and the
result joins back on (Date, Sector33Code). There is no target encoding of the sector. `z_in_sec_*`
are cross-sectional z-scores among the members of a sector on one Date.

Bounded memory (gogoku.features.memory): the longest windows are the time-series z-scores
`sec_vol_20_z` and `sec_ret_20d_z` (`gogoku.features.topix.Z_WINDOW` = 240 daily values of 20-session
statistics: 260 sessions of the sector series).
"""

from __future__ import annotations

import polars as pl

from gogoku.features.price import ANNUALIZE, window
from gogoku.features.topix import rolling_beta, ts_zscore

IDENTITY_COLUMNS: tuple[str, ...] = ("Section", "MarketCode", "Sector33Code", "Sector17Code")

# MarketCode -> the Section names of trades_spec (flow features join on Section in later issues).
SECTION_BY_MARKET_CODE = {
    "0101": "TSE1st",
    "0102": "TSE2nd",
    "0104": "TSEMothers",
    "0106": "TSEJASDAQ",
    "0107": "TSEJASDAQ",
    "0111": "TSEPrime",
    "0112": "TSEStandard",
    "0113": "TSEGrowth",
}

SEC_RETURN_WINDOWS = (5, 10, 20, 60)
# Stock columns (from the price group) that get a within-sector z-score `z_in_sec_{name}`.
Z_IN_SECTOR_SOURCES = (
    "returns_1d", "returns_5d", "returns_20d", "volatility_20d", "volume_ratio_20", "rsi_14", "price_to_sma20",
)

SECTOR_FEATURES: tuple[str, ...] = (
    "sec_ret_1d_eq",
    "sec_ret_1d_mean",
    *[f"sec_ret_{n}d_eq" for n in SEC_RETURN_WINDOWS],
    "sec_ret_20d_z",
    "sec_mom_20",
    "sec_gap_5_20",
    "sec_vol_20",
    "sec_vol_60",
    "sec_vol_20_z",
    "sec_breadth",
    "sec_breadth_20",
    "sec_dispersion",
    "sec_dispersion_20",
    "sec_member_cnt",
    "rel_to_sec_1d",
    "rel_to_sec_5d",
    "rel_to_sec_20d",
    "beta_to_sec_60",
    "corr_to_sec_60",
    *[f"z_in_sec_{c}" for c in Z_IN_SECTOR_SOURCES],
    "rank_in_sec_returns_20d",
)

_SEC = "Sector33Code"


def attach_listed_info(lf: pl.LazyFrame, listed: pl.LazyFrame) -> pl.LazyFrame:
    """Add `IDENTITY_COLUMNS` from the listed_info snapshot in force at each row's Date.

    As of: the latest snapshot with snapshot Date <= row Date for the Code. Rows older than a
    Code's first snapshot take that first snapshot: membership is a slowly changing attribute and
    those rows are the warm-up history of the windows. Rows come back sorted by (Code, Date).
    """
    snaps = (
        listed.select(
            pl.col("Date").alias("_snap"),
            "Code",
            pl.col("MarketCode").cast(pl.Utf8),
            pl.col("Sector33Code").cast(pl.Utf8),
            pl.col("Sector17Code").cast(pl.Utf8),
        )
        .drop_nulls(["_snap", "Code"])
        .unique(["Code", "_snap"], keep="last")
        .sort("_snap")
    )
    cols = ["MarketCode", "Sector33Code", "Sector17Code"]
    joined = (
        lf.sort("Date")
        .join_asof(
            snaps, left_on="Date", right_on="_snap", by="Code", strategy="backward", check_sortedness=False
        )
        .rename({"_snap": "_matched_snap"})
        .join_asof(
            snaps.rename({c: f"_first_{c}" for c in cols}),
            left_on="Date",
            right_on="_snap",
            by="Code",
            strategy="forward",
            check_sortedness=False,
        )
        .drop("_snap")
    )
    matched = pl.col("_matched_snap").is_not_null()
    return (
        joined.with_columns(
            *[pl.when(matched).then(pl.col(c)).otherwise(pl.col(f"_first_{c}")).alias(c) for c in cols]
        )
        .drop("_matched_snap", *[f"_first_{c}" for c in cols])
        .with_columns(pl.col("MarketCode").replace_strict(SECTION_BY_MARKET_CODE, default=None).alias("Section"))
        .sort("Code", "Date")
    )


def sector_daily_series(lf: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (Sector33Code, Date): the day's member statistics and windows over sector dates."""
    ret = pl.col("returns_1d")
    daily = (
        lf.filter(pl.col(_SEC).is_not_null())
        .group_by(_SEC, "Date")
        .agg(
            ret.median().alias("sec_ret_1d_eq"),
            ret.mean().alias("sec_ret_1d_mean"),
            # Share of the members with a return that day that went up.
            pl.when(ret.count() > 0).then((ret > 0).sum() / ret.count()).alias("sec_breadth"),
            ret.std().alias("sec_dispersion"),
            pl.len().cast(pl.Float64).alias("sec_member_cnt"),
        )
        .sort(_SEC, "Date")
    )
    r = pl.col("sec_ret_1d_eq")
    log_r = (1.0 + r).log()
    # A sector index (the compounded median return); its moving-average ratio does not depend on
    # where the series starts. A day without a median return (the first) leaves it unchanged.
    daily = daily.with_columns(window(log_r.fill_null(0.0).cum_sum(), _SEC).exp().alias("_index"))
    idx = pl.col("_index")
    sd20 = window(r.rolling_std(20), _SEC)
    daily = daily.with_columns(
        *[(window(log_r.rolling_sum(n), _SEC).exp() - 1.0).alias(f"sec_ret_{n}d_eq") for n in SEC_RETURN_WINDOWS],
        # Risk-adjusted trend: mean daily sector return over its 20-day spread (a t-statistic / sqrt(20)).
        pl.when(sd20 > 0).then(window(r.rolling_mean(20), _SEC) / sd20).alias("sec_mom_20"),
        (window(idx.rolling_mean(5), _SEC) / window(idx.rolling_mean(20), _SEC) - 1.0).alias("sec_gap_5_20"),
        (sd20 * ANNUALIZE).alias("sec_vol_20"),
        (window(r.rolling_std(60), _SEC) * ANNUALIZE).alias("sec_vol_60"),
        window(pl.col("sec_breadth").rolling_mean(20), _SEC).alias("sec_breadth_20"),
        window(pl.col("sec_dispersion").rolling_mean(20), _SEC).alias("sec_dispersion_20"),
    )
    return daily.with_columns(
        ts_zscore("sec_vol_20", _SEC).alias("sec_vol_20_z"),
        ts_zscore("sec_ret_20d_eq", _SEC).alias("sec_ret_20d_z"),
    ).drop("_index")


def add_sector_features(lf: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Add `SECTOR_FEATURES`; needs Sector33Code, returns_{1,5,20}d and `Z_IN_SECTOR_SOURCES`.

    Rows sorted by (Code, Date).
    """
    daily = sector_daily_series(lf)
    lf = lf.join(daily, on=[_SEC, "Date"], how="left", maintain_order="left")
    group = ["Date", _SEC]
    ret, sret = pl.col("returns_1d"), pl.col("sec_ret_1d_eq")

    # Stocks without a sector get no within-sector statistics (they are not one sector).
    has_sector = pl.col(_SEC).is_not_null()

    def z_in_sector(col: str) -> pl.Expr:
        x = pl.col(col)
        std = x.std().over(group)
        return pl.when(has_sector & (std > 0)).then((x - x.mean().over(group)) / std)

    r20 = pl.col("returns_20d")
    n20 = r20.count().over(group)
    return lf.with_columns(
        (ret - sret).alias("rel_to_sec_1d"),
        (pl.col("returns_5d") - pl.col("sec_ret_5d_eq")).alias("rel_to_sec_5d"),
        (r20 - pl.col("sec_ret_20d_eq")).alias("rel_to_sec_20d"),
        *[z_in_sector(c).alias(f"z_in_sec_{c}") for c in Z_IN_SECTOR_SOURCES],
        # Rank among the sector's members that day, scaled to (-0.5, 0.5]; null for a lone member.
        pl.when(has_sector & (n20 > 1)).then((r20.rank("average").over(group) - 0.5) / n20 - 0.5).alias("rank_in_sec_returns_20d"),
        rolling_beta(ret, sret, 60, by).alias("beta_to_sec_60"),
        window(pl.rolling_corr(ret, sret, window_size=60), by).alias("corr_to_sec_60"),
    )
