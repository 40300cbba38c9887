"""dmi_* (daily margin): usable the session after PublishedDate; corrections from their own date."""

from __future__ import annotations

import datetime as dt
import statistics

import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.features.daily_margin import DMI_FEATURES, REQUIRED, add_daily_margin_features, daily_margin_table

D = dt.date
DAYS = business_days(D(2024, 10, 1), D(2025, 1, 10))


ROWS = [
    # (application, published, long, short, long chg, short chg, restricted flag)
    (D(2024, 10, 31), D(2024, 11, 1), 1000.0, 200.0, None, None, "0"),
    (D(2024, 11, 1), D(2024, 11, 5), 1100.0, 220.0, 100.0, 20.0, "1"),
    (D(2024, 11, 1), D(2024, 11, 6), 1200.0, 240.0, 200.0, 40.0, "1"),  # correction
    (D(2024, 12, 30), D(2025, 1, 6), 900.0, 300.0, -300.0, 60.0, "0"),
]


def daily(rows: list[tuple] = ROWS) -> pl.LazyFrame:
    frame = {c: [] for c in REQUIRED}
    for app, pub, lo, sh, lc, sc, flag in rows:
        vals = {"PublishedDate": pub, "Code": "13010", "ApplicationDate": app, "LongMarginOutstanding": lo,
                "ShortMarginOutstanding": sh, "DailyChangeLongMarginOutstanding": lc,
                "DailyChangeShortMarginOutstanding": sc, "LongMarginOutstandingListedShareRatio": lo / 1e4,
                "ShortMarginOutstandingListedShareRatio": sh / 1e4}
        for c in REQUIRED:
            frame[c].append(vals.get(c, flag if c == "PublishReason_Restricted" else
                                     ("1" if c == "PublishReason_DailyPublication" else
                                      ("0" if c.startswith("PublishReason") else None))))
    schema = {c: (pl.Date if c.endswith("Date") else pl.Utf8 if c == "Code" or c.startswith("Publish") else pl.Float64)
              for c in REQUIRED}
    return pl.LazyFrame(frame, schema=schema)


def at(out: pl.DataFrame, day: dt.date, name: str) -> object:
    return out.filter(pl.col("Date") == day)[name].item()


def test_daily_margin_timing_corrections_and_flags() -> None:
    rows = pl.LazyFrame({"Code": ["13010"] * len(DAYS), "Date": DAYS, "AdjustmentVolume": [100.0] * len(DAYS)})
    out = add_daily_margin_features(rows, daily()).collect()
    assert set(DMI_FEATURES) <= set(out.columns) and out.height == len(DAYS)
    # Published Fri 11-01 after the close: usable Tue 11-05 (11-04 is a holiday).
    assert at(out, D(2024, 11, 1), "is_dmi_valid") == 0.0
    assert at(out, D(2024, 11, 5), "dmi_long_to_adv20") == pytest.approx(10.0)
    assert at(out, D(2024, 11, 5), "dmi_short_long_ratio") == pytest.approx(0.2)
    assert at(out, D(2024, 11, 5), "dmi_long_chg_ratio") is None  # first day of the spell
    assert at(out, D(2024, 11, 5), "dmi_reason_restricted") == 0.0
    # 11-01 published on 11-05 -> 11-06; its correction on 11-06 -> 11-07.
    assert at(out, D(2024, 11, 6), "dmi_long_to_adv20") == pytest.approx(11.0)
    assert at(out, D(2024, 11, 6), "dmi_long_chg_ratio") == pytest.approx(0.1)
    assert at(out, D(2024, 11, 6), "dmi_reason_restricted") == 1.0
    assert at(out, D(2024, 11, 7), "dmi_long_to_adv20") == pytest.approx(12.0)
    assert at(out, D(2024, 11, 7), "dmi_long_chg_to_adv20") == pytest.approx(2.0)
    assert at(out, D(2024, 11, 7), "dmi_reason_dailypublication") == 1.0
    # Stale after the spell: 5 sessions fresh, then flagged.
    assert at(out, D(2024, 11, 14), "dmi_days_since") == 5.0 and at(out, D(2024, 11, 14), "is_dmi_valid") == 1.0
    assert at(out, D(2024, 11, 15), "is_dmi_valid") == 0.0
    # 12-30 published 2025-01-06 (after the year-end closure): usable 01-07.
    assert at(out, D(2025, 1, 6), "dmi_long_to_adv20") == pytest.approx(12.0)
    assert at(out, D(2025, 1, 7), "dmi_imbalance") == pytest.approx(600 / 1200)
    assert at(out, D(2025, 1, 7), "dmi_short_chg_ratio") == pytest.approx(60 / 240)


def test_daily_margin_bounded_memory() -> None:
    # The 2024-12-30 balances (usable 2025-01-07) attach for MAX_AGE_DAYS = 91 days: through 04-08.
    days = business_days(D(2025, 4, 7), D(2025, 4, 9))
    rows = pl.LazyFrame({"Code": ["13010"] * len(days), "Date": days, "AdjustmentVolume": [100.0] * len(days)})
    out = add_daily_margin_features(rows, daily()).collect()
    assert out["dmi_imbalance"].to_list() == pytest.approx([600 / 1200, 600 / 1200, None])
    assert out["dmi_days_since"][1] == float(len(business_days(D(2025, 1, 7), D(2025, 4, 8))) - 1)
    assert out["dmi_days_since"][2] is None and out["is_dmi_valid"][2] == 0.0


def test_daily_margin_z_scores_take_recent_publications_only() -> None:
    # Two alert spells eight months apart, six daily publications each: a z-score of the second spell
    # never reaches back to the first (Z_MAX_DAYS = 182), so it needs 5 publications of its own.
    spell_a, spell_b = business_days(D(2024, 2, 1), D(2024, 2, 8)), business_days(D(2024, 10, 1), D(2024, 10, 8))
    longs = [100.0 * (k + 1) for k in range(6)] + [1000.0 + 100.0 * k for k in range(6)]
    rows = [(day, day, lo, 50.0, None, None, "0") for day, lo in zip(spell_a + spell_b, longs, strict=True)]
    t = daily_margin_table(daily(rows)).collect().sort("_eff")
    z = t["dmi_long_z26"].to_list()
    sd5 = statistics.stdev([1000.0, 1100.0, 1200.0, 1300.0, 1400.0])  # = statistics.stdev([100, ..., 500])
    assert z[:4] == [None] * 4 and z[6:10] == [None] * 4  # fewer than 5 publications in the window
    assert z[4] == pytest.approx((500 - 300) / sd5)  # spell A's first five
    assert z[10] == pytest.approx((1400 - 1200) / sd5)  # spell B's first five only
    assert z[11] == pytest.approx((1500 - 1250) / statistics.stdev([1000.0 + 100 * k for k in range(6)]))
