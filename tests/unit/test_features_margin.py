"""margin_* (weekly): usable the session after publication on the 2nd business day after the record."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.features.margin import MARGIN_FEATURES, add_margin_features

D = dt.date
DAYS = business_days(D(2024, 10, 1), D(2025, 1, 8))


def weekly() -> pl.LazyFrame:
    return pl.LazyFrame({
        "Date": [D(2024, 10, 25), D(2024, 11, 1), D(2024, 12, 27)], "Code": ["13010"] * 3,
        "LongMarginTradeVolume": [5000.0, 6000.0, 3000.0], "ShortMarginTradeVolume": [1000.0, 1500.0, 3000.0],
        "LongNegotiableMarginTradeVolume": [1000.0, 1200.0, 600.0],
        "ShortStandardizedMarginTradeVolume": [500.0, 1500.0, 0.0],
    })


def listed() -> pl.LazyFrame:
    return pl.LazyFrame({"Date": [D(2024, 10, 1), D(2024, 10, 1), D(2024, 12, 2)], "Code": ["13010", "13020", "13010"],
                         "MarginCode": ["2", "1", "1"]})


def at(out: pl.DataFrame, day: dt.date, name: str, code: str = "13010") -> object:
    return out.filter(pl.col("Code") == code, pl.col("Date") == day)[name].item()


def test_publication_schedule_ratios_and_adv() -> None:
    rows = pl.LazyFrame({"Code": ["13010"] * len(DAYS) + ["13020"] * len(DAYS), "Date": DAYS * 2,
                         "AdjustmentVolume": [1000.0] * (2 * len(DAYS))})
    out = add_margin_features(rows, weekly(), listed()).collect()
    assert set(MARGIN_FEATURES) <= set(out.columns) and out.height == 2 * len(DAYS)
    # 10-25 record: published after the close of 10-29 -> usable 10-30.
    assert at(out, D(2024, 10, 29), "is_margin_valid") == 0.0
    assert at(out, D(2024, 10, 30), "margin_long_short_ratio") == pytest.approx(5.0)
    assert at(out, D(2024, 10, 30), "margin_imbalance") == pytest.approx(4000 / 6000)
    assert at(out, D(2024, 10, 30), "margin_long_to_adv20") == pytest.approx(5.0)
    assert at(out, D(2024, 10, 30), "margin_net_to_adv20") == pytest.approx(4.0)
    assert at(out, D(2024, 10, 30), "margin_long_wow") is None
    assert at(out, D(2024, 10, 30), "margin_days_since") == 3.0
    assert at(out, D(2024, 10, 30), "margin_long_neg_share") == pytest.approx(0.2)
    # 11-01 record: 11-04 is a holiday, so publication is on 11-06 and use from 11-07 (not 11-06).
    assert at(out, D(2024, 11, 6), "margin_long_short_ratio") == pytest.approx(5.0)
    assert at(out, D(2024, 11, 7), "margin_long_short_ratio") == pytest.approx(4.0)
    assert at(out, D(2024, 11, 7), "margin_long_wow") == pytest.approx(0.2)
    assert at(out, D(2024, 11, 7), "margin_short_wow") == pytest.approx(0.5)
    assert at(out, D(2024, 11, 7), "margin_long_chg_to_adv20") == pytest.approx(1.0)
    assert at(out, D(2024, 11, 7), "margin_imbalance_chg") == pytest.approx(0.6 - 4000 / 6000)
    # The 11-01 record (usable 11-07) attaches for MAX_AGE_DAYS = 21 days: through 11-28, not on 11-29.
    assert at(out, D(2024, 11, 28), "margin_long_short_ratio") == pytest.approx(4.0)
    assert at(out, D(2024, 11, 29), "margin_long_short_ratio") is None
    assert at(out, D(2024, 11, 29), "is_margin_valid") == 0.0
    # 12-27 record: the year-end closure puts publication on 2025-01-06 and use on 01-07. On 01-06 the
    # last record in force is 60 days old: nothing attaches.
    assert at(out, D(2025, 1, 6), "margin_long_short_ratio") is None
    assert at(out, D(2025, 1, 7), "margin_imbalance") == pytest.approx(0.0)
    assert at(out, D(2025, 1, 7), "margin_days_since") == 3.0
    # Its previous record (11-01) is 56 days older, beyond PREV_MAX_DAYS = 14: no week-over-week change
    # (it would have been 3000 / 6000 - 1).
    assert at(out, D(2025, 1, 7), "margin_long_wow") is None
    assert at(out, D(2025, 1, 7), "margin_imbalance_chg") is None
    # Loanable until the 2024-12-02 snapshot; 13020 never; 13020 has no margin rows.
    assert at(out, D(2024, 11, 29), "is_borrowable") == 1.0
    assert at(out, D(2024, 12, 2), "is_borrowable") == 0.0
    assert at(out, D(2024, 11, 7), "is_borrowable", "13020") == 0.0
    assert at(out, D(2024, 11, 7), "is_margin_valid", "13020") == 0.0
    # Cross-sectional z needs two stocks with values: only one here -> null.
    assert at(out, D(2024, 11, 7), "margin_imbalance_cs_z") is None
