"""Sector membership (as of each row's Date) and sector features `sec_*` (reference section 3).

Unlike the reference (its defect 7), sector rolling windows run over a DAILY SECTOR SERIES: the
members' returns are first reduced to one equal-weight (median) return per (Date, Sector33Code),
the windows run over that series sorted by Date, and the result joins back on (Date, Sector33Code).
"""

from __future__ import annotations

import polars as pl

from gogoku.features.market import ts_zscore
from gogoku.features.price import ANNUALIZE, window

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

SECTOR_FEATURES: tuple[str, ...] = (
    "sec_ret_1d_eq",
    "sec_ret_5d_eq",
    "sec_ret_20d_eq",
    "sec_mom_20",
    "sec_vol_20",
    "sec_vol_20_z",
    "sec_member_cnt",
    "rel_to_sec_5d",
    "rel_to_sec_20d",
    "z_in_sec_returns_5d",
    "z_in_sec_returns_20d",
    "beta_to_sec_60",
)


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
    """One row per (Sector33Code, Date): the sector's median member return and its windows."""
    r = pl.col("sec_ret_1d_eq")
    log_r = (1.0 + r).log()
    by = "Sector33Code"
    daily = (
        lf.filter(pl.col(by).is_not_null())
        .group_by(by, "Date")
        .agg(pl.col("returns_1d").median().alias("sec_ret_1d_eq"), pl.len().cast(pl.Float64).alias("sec_member_cnt"))
        .sort(by, "Date")
    )
    daily = daily.with_columns(
        (window(log_r.rolling_sum(5), by).exp() - 1.0).alias("sec_ret_5d_eq"),
        (window(log_r.rolling_sum(20), by).exp() - 1.0).alias("sec_ret_20d_eq"),
        # Risk-adjusted trend: mean daily sector return over its 20-day spread (a t-statistic / sqrt(20)).
        pl.when(window(r.rolling_std(20), by) > 0)
        .then(window(r.rolling_mean(20), by) / window(r.rolling_std(20), by))
        .alias("sec_mom_20"),
        (window(r.rolling_std(20), by) * ANNUALIZE).alias("sec_vol_20"),
    )
    return daily.with_columns(ts_zscore("sec_vol_20", by).alias("sec_vol_20_z"))


def add_sector_features(lf: pl.LazyFrame, by: str = "Code") -> pl.LazyFrame:
    """Add `SECTOR_FEATURES`; needs Sector33Code, returns_1d/5d/20d, rows sorted by (Code, Date)."""
    daily = sector_daily_series(lf)
    lf = lf.join(daily, on=["Sector33Code", "Date"], how="left", maintain_order="left")
    group = ["Date", "Sector33Code"]
    ret, sret = pl.col("returns_1d"), pl.col("sec_ret_1d_eq")

    def z_in_sector(col: str) -> pl.Expr:
        std = pl.col(col).std().over(group)
        return pl.when(std > 0).then((pl.col(col) - pl.col(col).mean().over(group)) / std)

    lf = lf.with_columns(
        (pl.col("returns_5d") - pl.col("sec_ret_5d_eq")).alias("rel_to_sec_5d"),
        (pl.col("returns_20d") - pl.col("sec_ret_20d_eq")).alias("rel_to_sec_20d"),
        z_in_sector("returns_5d").alias("z_in_sec_returns_5d"),
        z_in_sector("returns_20d").alias("z_in_sec_returns_20d"),
        window(pl.rolling_cov(ret, sret, window_size=60), by).alias("_cov"),
        window(sret.rolling_var(60), by).alias("_var"),
    )
    return lf.with_columns(
        pl.when(pl.col("_var") > 0).then(pl.col("_cov") / pl.col("_var")).alias("beta_to_sec_60")
    ).drop("_cov", "_var")

