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
    assert at(out, "13010", "ss_sec_short_share")[:2] == [None, None]
    assert at(out, "13010", "ss_sec_short_share")[2:] == pytest.approx([0.4, 0.4, 0.5])
    assert at(out, "20010", "ss_sec_short_share")[2:] == pytest.approx([0.2, 0.2, 0.0])
    assert at(out, "13010", "ss_sec_restricted_share")[2] == pytest.approx(0.9)
    assert at(out, "13010", "ss_mkt_short_share")[2:] == pytest.approx([0.3, 0.3, 0.25])
    assert at(out, "20010", "ss_sec_rel_mkt")[2] == pytest.approx(-0.1)
    assert at(out, "13010", "is_ss_valid") == [0.0, 0.0, 1.0, 1.0, 1.0]


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
