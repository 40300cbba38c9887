"""Earnings-calendar features `e_*` from fins/announcement (every plan).

Timing: the calendar row of an announcement dated D is published at 19:00 JST on the business day
before D (after that day's close), so by the as-of rule it is first usable on the session after that
publication, which is D itself when D is a session. A row dated T therefore knows the announcements
dated on or before T only: a row knows "the announcement is today" (`e_days_to` = 0) but never
further ahead from the calendar itself.

Further ahead, `e_days_to` is an estimate: companies keep their schedule from year to year, so the next
announcement is projected 364 days (52 weeks) after the earliest announcement of the past year that is
at least 45 days after the stock's latest actual announcement (so a quarter already announced this
year is not projected again). `e_days_to_is_est` flags the projected values. Counts are sessions of
the exchange calendar.

Windows: `e_win_pre{k}` = 1 when the next announcement falls within the next k sessions counting the
row's own day (0 <= e_days_to < k: pre1 is the announcement day, whose close precedes an after-close
release); `e_win_post{k}` = 1 when the latest past announcement was 1..k sessions ago.

Bounded memory (gogoku.features.memory; rows dated by the announcement Date): the projection reads
the announcements of the last PROJECTION_DAYS - 1 days only; the latest past announcement counts only
while it became usable at most LAST_MAX_AGE_DAYS = 365 days before the row's previous day (a stock
without an announcement for a year has no `e_days_since` and `is_e_valid` 0, not a count from however
long ago).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from gogoku.features._asof import session_index, session_shift
from gogoku.features.memory import PUBLICATION_LAG_DAYS

REQUIRED = ("Date", "Code")
PROJECTION_DAYS = 364
MIN_GAP_DAYS = 45
WINDOWS = (1, 3, 5)
LAST_MAX_AGE_DAYS = 365
# The most calendar days before a row that its e_* features read (announcement Date): an announcement
# is usable from the session after the day before it, so its Date is at most PUBLICATION_LAG_DAYS
# before that session; the latest past one is usable by the day before the row.
MEMORY_DAYS = PUBLICATION_LAG_DAYS + 1 + max(PROJECTION_DAYS, LAST_MAX_AGE_DAYS)

EARNINGS_FEATURES: tuple[str, ...] = (
    "e_days_to", "e_days_since", *[f"e_win_pre{k}" for k in WINDOWS], *[f"e_win_post{k}" for k in WINDOWS],
    "e_days_to_is_est", "is_e_valid",
)


def announcement_table(announcement: pl.LazyFrame) -> pl.LazyFrame:
    """Per (Code, announcement date `_ann`): `_eff`, the first session that may use the row."""
    t = (
        announcement.select(pl.col("Code").cast(pl.Utf8), pl.col("Date").alias("_ann"))
        .unique()
        .with_columns((pl.col("_ann") - pl.duration(days=1)).alias("_before"))
    )
    # 19:00 on the last session before the date -> the next session.
    return session_shift(t, "_before", 1, "_eff").drop("_before")


def add_earnings_features(lf: pl.LazyFrame, announcement: pl.LazyFrame) -> pl.LazyFrame:
    """Add `EARNINGS_FEATURES` to rows keyed by (Code, Date); rows come back sorted by (Code, Date)."""
    t = announcement_table(announcement).collect().lazy()
    lf = lf.with_row_index("_row_e")
    # Today's announcement (visible from its effective date, i.e. today).
    today = t.filter(pl.col("_eff") == pl.col("_ann")).select("Code", pl.col("_ann").alias("Date"),
                                                                 pl.lit(True).alias("_today"))
    lf = lf.join(today, on=["Code", "Date"], how="left", maintain_order="left")
    # Latest past announcement (strictly before the row's Date, visible by then).
    past = t.select("Code", pl.col("_eff").alias("_k_past"), pl.col("_ann").alias("_last")).sort("_k_past")
    lf = lf.with_columns((pl.col("Date") - pl.duration(days=1)).alias("_y")).sort("_y").join_asof(
        past, left_on="_y", right_on="_k_past", by="Code", strategy="backward", check_sortedness=False,
        tolerance=dt.timedelta(days=LAST_MAX_AGE_DAYS),
    )
    # Projection source: the earliest announcement in [max(T - 363, last + 45 - 364), T].
    lo = pl.max_horizontal(
        pl.col("Date") - pl.duration(days=PROJECTION_DAYS - 1),
        pl.col("_last") + pl.duration(days=MIN_GAP_DAYS - PROJECTION_DAYS),
    )
    src = t.select("Code", pl.col("_ann").alias("_src"), pl.col("_eff").alias("_src_eff")).sort("_src")
    lf = lf.with_columns(lo.alias("_lo")).sort("_lo").join_asof(
        src, left_on="_lo", right_on="_src", by="Code", strategy="forward", check_sortedness=False
    )
    visible = pl.col("_src_eff") <= pl.col("Date")
    lf = lf.with_columns(
        pl.when(visible).then(pl.col("_src") + pl.duration(days=PROJECTION_DAYS)).alias("_proj")
    )
    lf = session_index(session_index(session_index(lf, "Date", "_di"), "_last", "_li"), "_proj", "_pi")
    gap = pl.col("_pi") - pl.col("_di")
    est = pl.when(gap >= 1).then(gap).when(gap.is_not_null()).then(pl.lit(1, dtype=pl.Int64))
    days_to = pl.when(pl.col("_today")).then(0).otherwise(est).cast(pl.Float64)
    days_since = (pl.col("_di") - pl.col("_li")).cast(pl.Float64)
    lf = lf.with_columns(days_to.alias("e_days_to"), days_since.alias("e_days_since"))
    to, since = pl.col("e_days_to"), pl.col("e_days_since")
    return (
        lf.with_columns(
            *[pl.when(to.is_not_null()).then((to < k).cast(pl.Float64)).alias(f"e_win_pre{k}") for k in WINDOWS],
            *[pl.when(since.is_not_null()).then(((since >= 1) & (since <= k)).cast(pl.Float64)).alias(f"e_win_post{k}")
              for k in WINDOWS],
            pl.when(to.is_not_null()).then((~pl.col("_today").fill_null(False)).cast(pl.Float64)).alias("e_days_to_is_est"),
            (pl.col("_today").fill_null(False) | pl.col("_last").is_not_null()).cast(pl.Float64).alias("is_e_valid"),
        )
        .sort("_row_e")
        .drop("_row_e", "_today", "_y", "_k_past", "_last", "_lo", "_src", "_src_eff", "_proj", "_di", "_li", "_pi")
        .sort("Code", "Date")
    )

