"""Daily margin-interest features `dmi_*` (standard plan and above; only stocks under a margin alert).

Timing: the balances of `ApplicationDate` are published on `PublishedDate` after the close, so they are
usable from the next session after `PublishedDate`. A row takes, among the publications effective on
or before its Date, the latest ApplicationDate in its latest publication (a correction replaces the
original from the correction's own effective date, never earlier); the publication stops when an alert
spell ends, so `dmi_days_since` (sessions since the effective date) and `is_dmi_valid` (the last
publication is at most `FRESH_SESSIONS` old) tell stale values apart.

Bounded memory (gogoku.features.memory; rows dated by PublishedDate): a publication attaches only
while it became effective at most MAX_AGE_DAYS = 91 days before the row (a quarter after the alert
spell ended every `dmi_*` is null); `dmi_*_z26` take the last 26 publications effective within
Z_MAX_DAYS = 182 days of the publication (a spell of half a year at most; at least 5 of them),
not the last 26 ever, which could span years of separate spells. The changes are the records' own
DailyChange fields (no previous publication is read).
"""

from __future__ import annotations

import polars as pl

from gogoku.features._asof import asof_attach, ratio, recent_ts_z, session_index, session_shift
from gogoku.features.margin import adv20
from gogoku.features.memory import PUBLICATION_LAG_DAYS
from gogoku.jquants.endpoints import PUBLISH_REASONS

_NUM = ("LongMarginOutstanding", "ShortMarginOutstanding", "DailyChangeLongMarginOutstanding",
        "DailyChangeShortMarginOutstanding", "LongMarginOutstandingListedShareRatio",
        "ShortMarginOutstandingListedShareRatio")
REASON_COLUMNS = tuple(f"PublishReason_{r}" for r in PUBLISH_REASONS)
REQUIRED = ("PublishedDate", "Code", "ApplicationDate", *_NUM, *REASON_COLUMNS)
Z_WINDOW = 26
Z_MIN_SAMPLES = 5
FRESH_SESSIONS = 5
MAX_AGE_DAYS = 91
Z_MAX_DAYS = 182
# The most calendar days before a row that its dmi_* features read (PublishedDate).
MEMORY_DAYS = PUBLICATION_LAG_DAYS + MAX_AGE_DAYS + Z_MAX_DAYS

_TABLE = ("dmi_short_long_ratio", "dmi_long_listed_ratio", "dmi_short_listed_ratio", "dmi_long_chg_ratio",
          "dmi_short_chg_ratio", "dmi_long_z26", "dmi_short_z26", "dmi_ratio_z26", "dmi_imbalance")
_REASONS = tuple(f"dmi_reason_{r.lower()}" for r in PUBLISH_REASONS)

DMI_FEATURES: tuple[str, ...] = (
    *_TABLE, *_REASONS, "dmi_long_to_adv20", "dmi_short_to_adv20", "dmi_long_chg_to_adv20",
    "dmi_short_chg_to_adv20", "dmi_days_since", "is_dmi_valid",
)


def daily_margin_table(daily: pl.LazyFrame) -> pl.LazyFrame:
    long_, short = pl.col("LongMarginOutstanding"), pl.col("ShortMarginOutstanding")
    t = (
        daily.select(REQUIRED)
        .with_columns(pl.col("Code").cast(pl.Utf8), pl.col(_NUM).cast(pl.Float64))
        .unique(["Code", "ApplicationDate", "PublishedDate"], keep="last")
    )
    # Rolling windows run in publication order, so that a row never sees a later correction.
    t = session_shift(t, "PublishedDate", 1, "_eff").sort("Code", "_eff", "ApplicationDate", "PublishedDate")
    t = t.with_columns(
        ratio(short, long_).alias("dmi_short_long_ratio"),
        pl.col("LongMarginOutstandingListedShareRatio").alias("dmi_long_listed_ratio"),
        pl.col("ShortMarginOutstandingListedShareRatio").alias("dmi_short_listed_ratio"),
        ratio(pl.col("DailyChangeLongMarginOutstanding"), long_ - pl.col("DailyChangeLongMarginOutstanding"))
        .alias("dmi_long_chg_ratio"),
        ratio(pl.col("DailyChangeShortMarginOutstanding"), short - pl.col("DailyChangeShortMarginOutstanding"))
        .alias("dmi_short_chg_ratio"),
        ratio(long_ - short, long_ + short).alias("dmi_imbalance"),
        *[(pl.col(c).cast(pl.Utf8) == "1").cast(pl.Float64).alias(n) for c, n in zip(REASON_COLUMNS, _REASONS, strict=True)],
    )
    for name, x in (("dmi_long_z26", long_), ("dmi_short_z26", short), ("dmi_ratio_z26", ratio(short, long_))):
        t = recent_ts_z(t, x, name, date="_eff", by="Code", window=Z_WINDOW, min_samples=Z_MIN_SAMPLES,
                        max_days=Z_MAX_DAYS)
    # Several publications may become usable the same day (a late correction): keep the newest date.
    return (
        t.sort("Code", "_eff", "ApplicationDate", "PublishedDate")
        .unique(["Code", "_eff"], keep="last", maintain_order=True)
        .rename({"LongMarginOutstanding": "_long", "ShortMarginOutstanding": "_short",
                 "DailyChangeLongMarginOutstanding": "_long_chg", "DailyChangeShortMarginOutstanding": "_short_chg"})
    )


def add_daily_margin_features(lf: pl.LazyFrame, daily: pl.LazyFrame) -> pl.LazyFrame:
    """Add `DMI_FEATURES` to (Code, Date) rows carrying AdjustmentVolume; sorted by (Code, Date) after."""
    table = daily_margin_table(daily)
    lf = asof_attach(lf, table, "_eff", "Code", ["_long", "_short", "_long_chg", "_short_chg", *_TABLE, *_REASONS],
                     max_age_days=MAX_AGE_DAYS)
    lf = lf.sort("Code", "Date").with_columns(adv20().alias("_adv"))
    lf = session_index(session_index(lf, "Date", "_di"), "_eff", "_ei")
    adv = pl.col("_adv")
    since = (pl.col("_di") - pl.col("_ei")).cast(pl.Float64)
    return lf.with_columns(
        ratio(pl.col("_long"), adv).alias("dmi_long_to_adv20"),
        ratio(pl.col("_short"), adv).alias("dmi_short_to_adv20"),
        ratio(pl.col("_long_chg"), adv).alias("dmi_long_chg_to_adv20"),
        ratio(pl.col("_short_chg"), adv).alias("dmi_short_chg_to_adv20"),
        since.alias("dmi_days_since"),
        (since <= FRESH_SESSIONS).fill_null(False).cast(pl.Float64).alias("is_dmi_valid"),
    ).drop("_long", "_short", "_long_chg", "_short_chg", "_adv", "_di", "_ei", "_eff").sort("Code", "Date")
