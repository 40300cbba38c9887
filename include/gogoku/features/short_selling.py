"""Short-selling features `ss_*` (standard plan and above).

Sector ratios (markets/short_selling, per Sector33Code and Date) are released after the close of
Date, so they are usable from the next session. Short share = (short sales with + without price
restriction) / all sales of the sector; the market share sums every sector.

Large short positions (markets/short_selling_positions, per Code) are disclosed after the close of
DisclosedDate and usable from the next session. Each holder's latest report counts; a report below
0.5% of shares outstanding ends that holder's position. `ss_pos_ratio` is the sum of the open
positions' ratios, `ss_pos_holders` their count.
"""

from __future__ import annotations

import polars as pl

from gogoku.features._asof import asof_attach, ratio, session_shift, ts_z

SECTOR_REQUIRED = ("Date", "Sector33Code", "SellingExcludingShortSellingTurnoverValue",
                   "ShortSellingWithRestrictionsTurnoverValue", "ShortSellingWithoutRestrictionsTurnoverValue")
POSITION_REQUIRED = ("DisclosedDate", "CalculatedDate", "Code", "ShortSellerName", "ShortPositionsToSharesOutstandingRatio")
REPORT_THRESHOLD = 0.005

_SECTOR = ("ss_sec_short_share", "ss_sec_restricted_share", "ss_sec_short_share_z20", "ss_sec_short_share_z60",
           "ss_sec_short_share_chg5", "ss_sec_turnover_z20")
_MARKET = ("ss_mkt_short_share", "ss_mkt_short_share_z20", "ss_mkt_short_share_z60")
SHORT_SELLING_FEATURES: tuple[str, ...] = (*_SECTOR, *_MARKET, "ss_sec_rel_mkt", "is_ss_valid")
POSITION_FEATURES: tuple[str, ...] = ("ss_pos_ratio", "ss_pos_holders", "ss_pos_chg", "is_ss_pos_valid")


def _shares(frame: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    w, wo, ex = (pl.col(c) for c in SECTOR_REQUIRED[3:] + SECTOR_REQUIRED[2:3])
    short = w + wo
    return frame.with_columns(
        ratio(short, short + ex).alias("_share"), ratio(w, short).alias("_restricted"), (short + ex).alias("_turnover")
    ).sort(*by, "Date")


def sector_short_table(short_selling: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(per Sector33Code, market-wide) features keyed by their effective date `_eff`."""
    t = short_selling.select(SECTOR_REQUIRED).with_columns(
        pl.col("Sector33Code").cast(pl.Utf8), pl.col(SECTOR_REQUIRED[2:]).cast(pl.Float64)
    ).unique(["Sector33Code", "Date"], keep="last")
    sec = _shares(t, ["Sector33Code"]).with_columns(
        pl.col("_share").alias("ss_sec_short_share"),
        pl.col("_restricted").alias("ss_sec_restricted_share"),
        ts_z(pl.col("_share"), 20, 10).over("Sector33Code").alias("ss_sec_short_share_z20"),
        ts_z(pl.col("_share"), 60, 20).over("Sector33Code").alias("ss_sec_short_share_z60"),
        (pl.col("_share") - pl.col("_share").shift(5)).over("Sector33Code").alias("ss_sec_short_share_chg5"),
        ts_z(pl.col("_turnover").log1p(), 20, 10).over("Sector33Code").alias("ss_sec_turnover_z20"),
    )
    mkt = _shares(t.group_by("Date").agg(pl.col(SECTOR_REQUIRED[2:]).sum()), []).with_columns(
        pl.col("_share").alias("ss_mkt_short_share"),
        ts_z(pl.col("_share"), 20, 10).alias("ss_mkt_short_share_z20"),
        ts_z(pl.col("_share"), 60, 20).alias("ss_mkt_short_share_z60"),
    )
    return session_shift(sec, "Date", 1, "_eff"), session_shift(mkt, "Date", 1, "_eff_m")


def add_short_selling_features(lf: pl.LazyFrame, short_selling: pl.LazyFrame) -> pl.LazyFrame:
    """Add `SHORT_SELLING_FEATURES` to (Code, Date) rows carrying Sector33Code."""
    sec, mkt = sector_short_table(short_selling)
    lf = asof_attach(lf, sec.rename({"Date": "_ss_date"}), "_eff", "Sector33Code", ["_ss_date", *_SECTOR])
    lf = asof_attach(lf, mkt, "_eff_m", None, list(_MARKET))
    return lf.with_columns(
        (pl.col("ss_sec_short_share") - pl.col("ss_mkt_short_share")).alias("ss_sec_rel_mkt"),
        pl.col("_ss_date").is_not_null().cast(pl.Float64).alias("is_ss_valid"),
    ).drop("_ss_date", "_eff", "_eff_m")


def position_table(positions: pl.LazyFrame) -> pl.LazyFrame:
    """Per (Code, _eff): the total open short-position ratio and holder count after that day's reports."""
    r = pl.col("ShortPositionsToSharesOutstandingRatio")
    t = session_shift(
        positions.select(POSITION_REQUIRED).with_columns(pl.col("Code").cast(pl.Utf8), r.cast(pl.Float64)),
        "DisclosedDate", 1, "_eff",
    ).sort("Code", "ShortSellerName", "_eff", "CalculatedDate")
    open_ = (r >= REPORT_THRESHOLD).cast(pl.Float64)
    t = t.with_columns(
        (pl.when(r >= REPORT_THRESHOLD).then(r).otherwise(0.0)).alias("_open_ratio"), open_.alias("_open"),
    ).with_columns(
        (pl.col("_open_ratio") - pl.col("_open_ratio").shift(1).over("Code", "ShortSellerName").fill_null(0.0))
        .alias("_d_ratio"),
        (pl.col("_open") - pl.col("_open").shift(1).over("Code", "ShortSellerName").fill_null(0.0)).alias("_d_open"),
    )
    return (
        t.group_by("Code", "_eff").agg(pl.col("_d_ratio").sum(), pl.col("_d_open").sum())
        .sort("Code", "_eff")
        .with_columns(
            pl.col("_d_ratio").cum_sum().over("Code").alias("ss_pos_ratio"),
            pl.col("_d_open").cum_sum().over("Code").alias("ss_pos_holders"),
            pl.col("_d_ratio").alias("ss_pos_chg"),
        )
    )


def add_position_features(lf: pl.LazyFrame, positions: pl.LazyFrame) -> pl.LazyFrame:
    """Add `POSITION_FEATURES` to (Code, Date) rows: codes never reported get 0 positions."""
    lf = asof_attach(lf, position_table(positions), "_eff", "Code", ["ss_pos_ratio", "ss_pos_holders", "ss_pos_chg"])
    return lf.with_columns(
        pl.col("_eff").is_not_null().cast(pl.Float64).alias("is_ss_pos_valid"),
        pl.col("ss_pos_ratio").fill_null(0.0).round(6),
        pl.col("ss_pos_holders").fill_null(0.0),
    ).drop("_eff")
