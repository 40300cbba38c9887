"""Weekly margin-interest features `margin_*` (standard plan and above).

Timing: a weekly record is dated at the week's last session (`Date`) and published after the close of
the 2nd business day after it, so it is usable from the 3rd session after `Date` (exchange calendar,
holidays included). Volumes are compared with the stock's 20-session average daily volume at the row
(ADV20 from daily quotes, the row's own bar included, which the as-of rule of docs/data.md allows).
`is_borrowable` is listed_info's MarginCode == "2" (loanable issue) in the snapshot in force.

Bounded memory (gogoku.features.memory; rows dated by the record's Date): a record attaches only
while it became usable at most MAX_AGE_DAYS = 21 days before the row (three weeks: a stock that
left the weekly statistics gets nulls, not its last record forever); week-over-week changes compare
with the previous record only when it is dated at most PREV_MAX_DAYS = 14 days earlier (one missing
week); `margin_*_z52` take the last 52 records dated within Z_MAX_DAYS = 358 days of the record (52
weekly records span 357 days), at least 8.
"""

from __future__ import annotations

import polars as pl

from gogoku.features._asof import (
    asof_attach,
    cs_z,
    prev_within,
    ratio,
    recent_ts_z,
    session_index,
    session_shift,
)
from gogoku.features.memory import PUBLICATION_LAG_DAYS

REQUIRED = ("Date", "Code", "LongMarginTradeVolume", "ShortMarginTradeVolume", "LongNegotiableMarginTradeVolume",
            "ShortStandardizedMarginTradeVolume")
Z_WINDOW = 52
Z_MIN_SAMPLES = 8
PUBLISH_LAG_SESSIONS = 3  # published after the close of Date + 2 sessions -> usable one session later
MAX_AGE_DAYS = 21
PREV_MAX_DAYS = 14
Z_MAX_DAYS = 358
# The most calendar days before a row that its margin_* features read (record Date).
MEMORY_DAYS = PUBLICATION_LAG_DAYS + MAX_AGE_DAYS + max(Z_MAX_DAYS, PREV_MAX_DAYS)

_WEEKLY = ("margin_long_short_ratio", "margin_imbalance", "margin_long_wow", "margin_short_wow",
           "margin_long_z52", "margin_short_z52", "margin_ratio_z52", "margin_imbalance_chg",
           "margin_long_neg_share", "margin_short_std_share")
_CS_Z = ("margin_imbalance", "margin_long_to_adv20", "margin_short_to_adv20")

MARGIN_FEATURES: tuple[str, ...] = (
    *_WEEKLY, "margin_long_to_adv20", "margin_short_to_adv20", "margin_net_to_adv20",
    "margin_long_chg_to_adv20", "margin_short_chg_to_adv20", "margin_days_since",
    *[f"{c}_cs_z" for c in _CS_Z], "is_margin_valid", "is_borrowable",
)


def adv20() -> pl.Expr:
    """20-session average adjusted volume per Code (rows sorted by Code, Date)."""
    return pl.col("AdjustmentVolume").cast(pl.Float64).rolling_mean(20, min_samples=10).over("Code")


def weekly_margin_table(weekly: pl.LazyFrame) -> pl.LazyFrame:
    long_, short = pl.col("LongMarginTradeVolume"), pl.col("ShortMarginTradeVolume")
    t = (
        weekly.select(REQUIRED)
        .with_columns(pl.col("Code").cast(pl.Utf8), pl.col(REQUIRED[2:]).cast(pl.Float64))
        .unique(["Code", "Date"], keep="last")
        .sort("Code", "Date")
        .with_columns(
            ratio(long_, short).alias("margin_long_short_ratio"),
            ratio(long_ - short, long_ + short).alias("margin_imbalance"),
            ratio(short, long_).alias("_sl"),
            ratio(pl.col("LongNegotiableMarginTradeVolume"), long_).alias("margin_long_neg_share"),
            ratio(pl.col("ShortStandardizedMarginTradeVolume"), short).alias("margin_short_std_share"),
            prev_within(long_, "Date", PREV_MAX_DAYS, "Code").alias("_long_prev"),
            prev_within(short, "Date", PREV_MAX_DAYS, "Code").alias("_short_prev"),
        )
        .with_columns(
            (ratio(long_, pl.col("_long_prev")) - 1.0).alias("margin_long_wow"),
            (ratio(short, pl.col("_short_prev")) - 1.0).alias("margin_short_wow"),
            (pl.col("margin_imbalance") - prev_within(pl.col("margin_imbalance"), "Date", PREV_MAX_DAYS, "Code"))
            .alias("margin_imbalance_chg"),
            (long_ - pl.col("_long_prev")).alias("_long_chg"),
            (short - pl.col("_short_prev")).alias("_short_chg"),
        )
    )
    for name, x in (("margin_long_z52", long_), ("margin_short_z52", short), ("margin_ratio_z52", pl.col("_sl"))):
        t = recent_ts_z(t, x, name, date="Date", by="Code", window=Z_WINDOW, min_samples=Z_MIN_SAMPLES,
                        max_days=Z_MAX_DAYS)
    return session_shift(t, "Date", PUBLISH_LAG_SESSIONS, "_eff").rename(
        {"Date": "_rec", "LongMarginTradeVolume": "_long", "ShortMarginTradeVolume": "_short"}
    )


def add_margin_features(lf: pl.LazyFrame, weekly: pl.LazyFrame, listed: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Add `MARGIN_FEATURES` to (Code, Date) rows carrying AdjustmentVolume; sorted by (Code, Date) after."""
    table = weekly_margin_table(weekly)
    lf = asof_attach(lf, table, "_eff", "Code", ["_rec", "_long", "_short", "_long_chg", "_short_chg", *_WEEKLY],
                     max_age_days=MAX_AGE_DAYS)
    lf = lf.sort("Code", "Date").with_columns(adv20().alias("_adv"))
    adv = pl.col("_adv")
    lf = session_index(session_index(lf, "Date", "_di"), "_rec", "_ri").with_columns(
        ratio(pl.col("_long"), adv).alias("margin_long_to_adv20"),
        ratio(pl.col("_short"), adv).alias("margin_short_to_adv20"),
        ratio(pl.col("_long") - pl.col("_short"), adv).alias("margin_net_to_adv20"),
        ratio(pl.col("_long_chg"), adv).alias("margin_long_chg_to_adv20"),
        ratio(pl.col("_short_chg"), adv).alias("margin_short_chg_to_adv20"),
        (pl.col("_di") - pl.col("_ri")).cast(pl.Float64).alias("margin_days_since"),
        pl.col("_rec").is_not_null().cast(pl.Float64).alias("is_margin_valid"),
    )
    if listed is not None:
        snaps = listed.select(
            pl.col("Code").cast(pl.Utf8), pl.col("Date").alias("_snap"),
            (pl.col("MarginCode").cast(pl.Utf8) == "2").cast(pl.Float64).alias("is_borrowable"),
        ).unique(["Code", "_snap"], keep="last")
        lf = asof_attach(lf, snaps, "_snap", "Code", ["is_borrowable"])
        # Rows older than a code's first snapshot take that snapshot, as the identity columns do
        # (gogoku.features.sector.attach_listed_info): they are the warm-up history of the windows.
        first = snaps.sort("_snap").unique("Code", keep="first").select("Code", pl.col("is_borrowable").alias("_b0"))
        lf = lf.join(first, on="Code", how="left", maintain_order="left").with_columns(
            pl.coalesce("is_borrowable", "_b0").alias("is_borrowable")
        ).drop("_b0")
    else:
        lf = lf.with_columns(pl.lit(None, dtype=pl.Float64).alias("is_borrowable"))
    return (
        lf.with_columns(*[cs_z(c) for c in _CS_Z])
        .drop("_rec", "_long", "_short", "_long_chg", "_short_chg", "_adv", "_di", "_ri", "_eff", "_snap", strict=False)
        .sort("Code", "Date")
    )
