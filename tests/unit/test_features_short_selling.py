"""ss_*: sector short-selling shares and short positions, usable the session after release."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.features.short_selling import (
    POSITION_FEATURES,
    SHORT_SELLING_FEATURES,
    add_position_features,
    add_short_selling_features,
)

D = dt.date
DAYS = [D(2024, 10, 31), D(2024, 11, 1), D(2024, 11, 5), D(2024, 12, 30), D(2025, 1, 6)]


def rows() -> pl.LazyFrame:
    return pl.LazyFrame({"Code": ["13010"] * 5 + ["20010"] * 5, "Date": DAYS * 2,
                         "Sector33Code": ["0050"] * 5 + ["1050"] * 5})


def at(out: pl.DataFrame, code: str, name: str) -> list:
    return out.filter(pl.col("Code") == code).sort("Date")[name].to_list()


def test_sector_short_share_timing() -> None:
    ss = pl.LazyFrame({
        "Date": [D(2024, 11, 1)] * 2 + [D(2024, 12, 30)] * 2, "Sector33Code": ["0050", "1050"] * 2,
        "SellingExcludingShortSellingTurnoverValue": [60.0, 80.0, 50.0, 100.0],
        "ShortSellingWithRestrictionsTurnoverValue": [36.0, 18.0, 50.0, 0.0],
        "ShortSellingWithoutRestrictionsTurnoverValue": [4.0, 2.0, 0.0, 0.0],
    })
    out = add_short_selling_features(rows(), ss).collect()
    assert set(SHORT_SELLING_FEATURES) <= set(out.columns) and out.height == 10
    # Released after the close of Fri 11-01: usable Tue 11-05 (11-04 holiday); 12-30 -> 2025-01-06.
    # On 12-30 the 11-01 values (usable since 11-05) are 55 days old, beyond SECTOR_MAX_AGE_DAYS = 14:
    # nothing attaches that day.
    assert at(out, "13010", "ss_sec_short_share")[:2] == [None, None]
    assert at(out, "13010", "ss_sec_short_share")[2:] == pytest.approx([0.4, None, 0.5])
    assert at(out, "20010", "ss_sec_short_share")[2:] == pytest.approx([0.2, None, 0.0])
    assert at(out, "13010", "ss_sec_restricted_share")[2] == pytest.approx(0.9)
    assert at(out, "13010", "ss_mkt_short_share")[2:] == pytest.approx([0.3, None, 0.25])
    assert at(out, "20010", "ss_sec_rel_mkt")[2] == pytest.approx(-0.1)
    assert at(out, "13010", "is_ss_valid") == [0.0, 0.0, 1.0, 0.0, 1.0]


def test_short_positions_open_sum() -> None:
    pos = pl.LazyFrame({
        "DisclosedDate": [D(2024, 10, 31), D(2024, 11, 1), D(2024, 12, 30)],
        "CalculatedDate": [D(2024, 10, 29), D(2024, 10, 30), D(2024, 12, 26)],
        "Code": ["13010"] * 3, "ShortSellerName": ["X", "Y", "X"],
        "ShortPositionsToSharesOutstandingRatio": [0.006, 0.008, 0.003],
    })
    out = add_position_features(rows(), pos).collect()
    assert set(POSITION_FEATURES) <= set(out.columns)
    assert at(out, "13010", "ss_pos_ratio") == pytest.approx([0.0, 0.006, 0.014, 0.014, 0.008])
    assert at(out, "13010", "ss_pos_holders") == [0.0, 1.0, 2.0, 2.0, 1.0]  # X closes below 0.5%
    assert at(out, "13010", "ss_pos_chg")[4] == pytest.approx(-0.006)
    assert at(out, "13010", "is_ss_pos_valid") == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert at(out, "20010", "ss_pos_ratio") == [0.0] * 5


def test_short_positions_expire_and_changes_are_bounded() -> None:
    # X's 0.7% of 2023-01-05 (usable 01-06) expires 300 days later (after 2023-11-02); its next report
    # (0.8%, usable 2024-01-09, 368 days later) is a change from nothing, not from 0.7%. Y's 0.6% (usable
    # 2024-02-02) changes the total by 0.6% for CHG_MAX_AGE_DAYS = 60 days (through 04-02).
    pos = pl.LazyFrame({
        "DisclosedDate": [D(2023, 1, 5), D(2024, 1, 5), D(2024, 2, 1)],
        "CalculatedDate": [D(2023, 1, 4), D(2024, 1, 4), D(2024, 1, 31)],
        "Code": ["13010"] * 3, "ShortSellerName": ["X", "X", "Y"],
        "ShortPositionsToSharesOutstandingRatio": [0.007, 0.008, 0.006],
    })
    days = [D(2023, 11, 2), D(2023, 11, 6), D(2024, 1, 9), D(2024, 2, 2), D(2024, 4, 2), D(2024, 4, 3)]
    rows_ = pl.LazyFrame({"Code": ["13010"] * len(days), "Date": days, "Sector33Code": ["0050"] * len(days)})
    out = add_position_features(rows_, pos).collect().sort("Date")
    assert out["ss_pos_ratio"].to_list() == pytest.approx([0.007, 0.0, 0.008, 0.014, 0.014, 0.014])
    assert out["ss_pos_holders"].to_list() == [1.0, 0.0, 1.0, 2.0, 2.0, 2.0]
    assert out["is_ss_pos_valid"].to_list() == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    # (On 2023-11-02 X's report, the last change, is 300 days old: beyond the 60 days.)
    assert out["ss_pos_chg"].to_list() == pytest.approx([None, None, 0.008, 0.006, 0.006, None])
