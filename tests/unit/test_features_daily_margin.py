"""dmi_* (daily margin): usable the session after PublishedDate; corrections from their own date."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.features.daily_margin import DMI_FEATURES, REQUIRED, add_daily_margin_features

D = dt.date
DAYS = business_days(D(2024, 10, 1), D(2025, 1, 10))


def daily() -> pl.LazyFrame:
    rows = [
        # (application, published, long, short, long chg, short chg, restricted flag)
        (D(2024, 10, 31), D(2024, 11, 1), 1000.0, 200.0, None, None, "0"),
        (D(2024, 11, 1), D(2024, 11, 5), 1100.0, 220.0, 100.0, 20.0, "1"),
        (D(2024, 11, 1), D(2024, 11, 6), 1200.0, 240.0, 200.0, 40.0, "1"),  # correction
        (D(2024, 12, 30), D(2025, 1, 6), 900.0, 300.0, -300.0, 60.0, "0"),
    ]
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
