"""Short-selling features `ss_*` (standard plan and above).

Sector ratios (markets/short_selling, per Sector33Code and Date) are released after the close of
Date, so they are usable from the next session. Short share = (short sales with + without price
restriction) / all sales of the sector; the market share sums every sector.

Large short positions (markets/short_selling_positions, per Code) are disclosed after the close of
DisclosedDate and usable from the next session. Each holder's latest report counts; a report below
0.5% of shares outstanding ends that holder's position. `ss_pos_ratio` is the sum of the open
positions' ratios, `ss_pos_holders` their count.

Bounded memory (gogoku.features.memory; rows dated by Date / DisclosedDate):
- sector and market shares attach only while at most SECTOR_MAX_AGE_DAYS = 14 days old; their
  z-scores take the last 20 / 60 daily values within Z_MAX_DAYS = 120 days (60 sessions span at most
  95 days); `ss_sec_short_share_chg5` compares with the value 5 rows back only when it is at most
  CHG5_MAX_DAYS = 21 days older;
- a holder's position expires POSITION_MAX_AGE_DAYS = 300 days after its last report became usable
  (holders report when their position moves, so a report older than that no longer counts);
  `is_ss_pos_valid` says that some report of the stock is that recent. `ss_pos_chg` is the change
  of the open ratio that the latest report day made (each reporting holder's new open ratio minus
  its position in force just before), null when that day is more than CHG_MAX_AGE_DAYS = 60 days old.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from gogoku.features._asof import asof_attach, prev_within, ratio, recent_ts_z, session_shift
from gogoku.features.memory import PUBLICATION_LAG_DAYS

SECTOR_REQUIRED = ("Date", "Sector33Code", "SellingExcludingShortSellingTurnoverValue",
                   "ShortSellingWithRestrictionsTurnoverValue", "ShortSellingWithoutRestrictionsTurnoverValue")
POSITION_REQUIRED = ("DisclosedDate", "CalculatedDate", "Code", "ShortSellerName", "ShortPositionsToSharesOutstandingRatio")
REPORT_THRESHOLD = 0.005
SECTOR_MAX_AGE_DAYS = 14
Z_MAX_DAYS = 120
CHG5_MAX_DAYS = 21
POSITION_MAX_AGE_DAYS = 300
CHG_MAX_AGE_DAYS = 60
# The most calendar days before a row that its ss_* features read (Date, DisclosedDate).
MEMORY_DAYS = PUBLICATION_LAG_DAYS + max(SECTOR_MAX_AGE_DAYS + max(Z_MAX_DAYS, CHG5_MAX_DAYS),
                                         CHG_MAX_AGE_DAYS + POSITION_MAX_AGE_DAYS)

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
        (pl.col("_share") - prev_within(pl.col("_share"), "Date", CHG5_MAX_DAYS, "Sector33Code", n=5))
        .alias("ss_sec_short_share_chg5"),
    )
    for name, x, n, m in (("ss_sec_short_share_z20", pl.col("_share"), 20, 10),
                          ("ss_sec_short_share_z60", pl.col("_share"), 60, 20),
                          ("ss_sec_turnover_z20", pl.col("_turnover").log1p(), 20, 10)):
        sec = recent_ts_z(sec, x, name, date="Date", by="Sector33Code", window=n, min_samples=m, max_days=Z_MAX_DAYS)
    mkt = _shares(t.group_by("Date").agg(pl.col(SECTOR_REQUIRED[2:]).sum()), []).with_columns(
        pl.col("_share").alias("ss_mkt_short_share"),
    )
    for name, n, m in (("ss_mkt_short_share_z20", 20, 10), ("ss_mkt_short_share_z60", 60, 20)):
        mkt = recent_ts_z(mkt, pl.col("_share"), name, date="Date", by=None, window=n, min_samples=m,
                          max_days=Z_MAX_DAYS)
    return session_shift(sec, "Date", 1, "_eff"), session_shift(mkt, "Date", 1, "_eff_m")


def add_short_selling_features(lf: pl.LazyFrame, short_selling: pl.LazyFrame) -> pl.LazyFrame:
    """Add `SHORT_SELLING_FEATURES` to (Code, Date) rows carrying Sector33Code."""
    sec, mkt = sector_short_table(short_selling)
    lf = asof_attach(lf, sec.rename({"Date": "_ss_date"}), "_eff", "Sector33Code", ["_ss_date", *_SECTOR],
                     max_age_days=SECTOR_MAX_AGE_DAYS)
    lf = asof_attach(lf, mkt, "_eff_m", None, list(_MARKET), max_age_days=SECTOR_MAX_AGE_DAYS)
    return lf.with_columns(
        (pl.col("ss_sec_short_share") - pl.col("ss_mkt_short_share")).alias("ss_sec_rel_mkt"),
        pl.col("_ss_date").is_not_null().cast(pl.Float64).alias("is_ss_valid"),
    ).drop("_ss_date", "_eff", "_eff_m")


def position_table(positions: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(state, changes): per (Code, `_at`) the open short-position ratio and holder count from `_at` on;
    per (Code, `_eff`) the change of the open ratio that the reports usable from `_eff` made.

    Each report holds its open ratio (0 below REPORT_THRESHOLD) from its effective date until the same
    holder's next report or until it expires POSITION_MAX_AGE_DAYS later, whichever comes first: the
    state is the running sum of those starts and ends (they cancel exactly once rounded to 6 decimals),
    so it depends on the reports of the last POSITION_MAX_AGE_DAYS only.
    """
    r = pl.col("ShortPositionsToSharesOutstandingRatio")
    holder = ["Code", "ShortSellerName"]
    t = session_shift(
        positions.select(POSITION_REQUIRED).with_columns(pl.col("Code").cast(pl.Utf8), r.cast(pl.Float64)),
        "DisclosedDate", 1, "_eff",
    ).sort(*holder, "_eff", "CalculatedDate")
    t = t.with_columns(
        pl.when(r >= REPORT_THRESHOLD).then(r).otherwise(0.0).alias("_open_ratio"),
        (r >= REPORT_THRESHOLD).cast(pl.Float64).alias("_open"),
    ).with_columns(
        # The holder's position in force just before this report (its previous report, unless expired).
        prev_within(pl.col("_open_ratio"), "_eff", POSITION_MAX_AGE_DAYS, holder).fill_null(0.0).alias("_before"),
        pl.min_horizontal(
            pl.col("_eff").shift(-1).over(holder),
            pl.col("_eff") + dt.timedelta(days=POSITION_MAX_AGE_DAYS + 1),
        ).alias("_end"),
    )
    events = pl.concat([
        t.select("Code", pl.col("_eff").alias("_at"), pl.col("_open_ratio").alias("_d_ratio"),
                 pl.col("_open").alias("_d_open")),
        t.select("Code", pl.col("_end").alias("_at"), (-pl.col("_open_ratio")).alias("_d_ratio"),
                 (-pl.col("_open")).alias("_d_open")),
    ])
    state = (
        events.group_by("Code", "_at").agg(pl.col("_d_ratio").sum(), pl.col("_d_open").sum())
        .sort("Code", "_at")
        .with_columns(
            pl.col("_d_ratio").cum_sum().over("Code").round(6).alias("ss_pos_ratio"),
            pl.col("_d_open").cum_sum().over("Code").alias("ss_pos_holders"),
        )
    )
    changes = (
        t.group_by("Code", "_eff").agg((pl.col("_open_ratio") - pl.col("_before")).sum().alias("ss_pos_chg"))
        .sort("Code", "_eff")
    )
    return state, changes


def add_position_features(lf: pl.LazyFrame, positions: pl.LazyFrame) -> pl.LazyFrame:
    """Add `POSITION_FEATURES` to (Code, Date) rows: codes without a position in force get 0 positions."""
    state, changes = position_table(positions)
    lf = asof_attach(lf, state, "_at", "Code", ["ss_pos_ratio", "ss_pos_holders"])
    lf = asof_attach(lf, changes, "_eff", "Code", ["ss_pos_chg"], max_age_days=CHG_MAX_AGE_DAYS)
    lf = asof_attach(lf, changes.select("Code", pl.col("_eff").alias("_last")), "_last", "Code", [],
                     max_age_days=POSITION_MAX_AGE_DAYS)
    return lf.with_columns(
        pl.col("_last").is_not_null().cast(pl.Float64).alias("is_ss_pos_valid"),
        pl.col("ss_pos_ratio").fill_null(0.0),
        pl.col("ss_pos_holders").fill_null(0.0),
    ).drop("_at", "_eff", "_last")
