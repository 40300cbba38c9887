"""Futures features: central contract, same-contract changes across a roll, T+0 / T+1 timing."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.features.futures import futures_features


def d(day: int) -> dt.date:
    return dt.date(2024, 3, day)


# TOPIXF March contract (last trading day 03-07) is central through 03-07, June from 03-08.
# 2024-03-09/10 is a weekend; 2024-03-20 is a TSE holiday with a (derivatives) holiday session.
MAR = {d(4): (2700, 2695, 100), d(5): (2710, 2712, 110), d(6): (2690, 2695, 90), d(7): (2720, 2715, 50)}
JUN = {
    d(4): (2690, 2686, 10), d(5): (2701, 2699, 20), d(6): (2682, 2684, 40), d(7): (2711, 2705, 80),
    d(8): (2730, 2716, 120), d(11): (2725, 2731, 125), d(12): (2740, 2722, 130),
    d(19): (2750, 2745, 140), d(20): (2760, 2755, 150), d(21): (2770, 2765, 160),
}
NK = {d(4): (39000, 38950, 500), d(5): (39390, 39100, 510)}


def rows(cat: str, code: str, month: str, last_day: dt.date, bars: dict, central_from: dt.date, central_to: dt.date) -> list[dict]:
    return [
        {
            "Date": day, "Code": code, "DerivativesProductCategory": cat, "WholeDayClose": float(close),
            "NightSessionClose": float(night), "OpenInterest": float(oi), "ContractMonth": month,
            "LastTradingDay": last_day, "CentralContractMonthFlag": "1" if central_from <= day <= central_to else "0",
        }
        for day, (close, night, oi) in bars.items()
    ]


def futures() -> pl.DataFrame:
    return pl.DataFrame(
        rows("TOPIXF", "161030018", "2024-03", d(7), MAR, d(1), d(7))
        + rows("TOPIXF", "161060018", "2024-06", dt.date(2024, 6, 13), JUN, d(8), d(31))
        + rows("NK225F", "160030018", "2024-03", d(7), NK, d(1), d(31))
    )


TOPIX = pl.DataFrame({"Date": [d(4), d(5), d(7), d(8)], "Close": [2650.0, 2660.0, 2670.0, 2690.0]})


@pytest.fixture(scope="module")
def out() -> pl.DataFrame:
    return futures_features(futures(), TOPIX)


def row(df: pl.DataFrame, day: dt.date) -> dict:
    got = df.filter(pl.col("Date") == day)
    assert got.height == 1, f"{day}: {got.height} rows"
    return got.row(0, named=True)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-6)  # Float32 output


def test_columns_and_types(out: pl.DataFrame) -> None:
    assert set(out.columns) == {
        "Date",
        "fut_topixf_night_ret", "fut_topixf_days_to_expiry", "fut_topixf_ret_1d", "fut_topixf_oi_chg",
        "fut_topixf_basis",
        "fut_nk225f_night_ret", "fut_nk225f_days_to_expiry", "fut_nk225f_ret_1d", "fut_nk225f_oi_chg",
    }
    assert all(dtype == pl.Float32 for name, dtype in out.schema.items() if name != "Date")
    assert out["Date"].is_sorted() and out["Date"].n_unique() == out.height


def test_night_session_is_same_day(out: pl.DataFrame) -> None:
    first = row(out, d(4))
    assert first["fut_topixf_night_ret"] is None  # no previous session
    assert first["fut_topixf_days_to_expiry"] == 3.0
    assert first["fut_topixf_ret_1d"] is None  # nothing from before 03-04
    assert row(out, d(5))["fut_topixf_night_ret"] == approx(2712 / 2700 - 1)
    # Roll day: the June contract's night close against the June contract's previous close.
    assert row(out, d(8))["fut_topixf_night_ret"] == approx(2716 / 2711 - 1)
    assert row(out, d(8))["fut_topixf_days_to_expiry"] == float((dt.date(2024, 6, 13) - d(8)).days)


def test_end_of_day_values_are_next_business_day(out: pl.DataFrame) -> None:
    assert row(out, d(5))["fut_topixf_basis"] == approx(2700 / 2650 - 1)  # 03-04's close vs TOPIX
    assert row(out, d(6))["fut_topixf_ret_1d"] == approx(2710 / 2700 - 1)
    assert row(out, d(6))["fut_topixf_oi_chg"] == approx(110 / 100 - 1)
    assert row(out, d(8))["fut_topixf_ret_1d"] == approx(2720 / 2690 - 1)  # 03-07, March contract
    # 03-08 (Friday) -> Monday 03-11; its return is against the SAME (June) contract's 03-07 close,
    # not the March contract that was central on 03-07.
    assert row(out, d(11))["fut_topixf_ret_1d"] == approx(2730 / 2711 - 1)
    assert row(out, d(11))["fut_topixf_basis"] == approx(2730 / 2690 - 1)
    assert row(out, d(11))["fut_topixf_oi_chg"] == approx(120 / 80 - 1)
    assert out.filter(pl.col("Date") == d(9)).is_empty()


def test_holiday_session_moves_to_next_business_day(out: pl.DataFrame) -> None:
    assert out.filter(pl.col("Date") == d(20)).is_empty()
    r = row(out, d(21))
    # EOD of 03-19 and of the 03-20 holiday session both first apply on 03-21: the later wins.
    assert r["fut_topixf_ret_1d"] == approx(2760 / 2750 - 1)
    # Night sessions of 03-20 and 03-21 both apply on 03-21: 03-21's own wins.
    assert r["fut_topixf_night_ret"] == approx(2765 / 2760 - 1)
    # The previous session is the category's previous listed day (03-12 here).
    assert row(out, d(19))["fut_topixf_night_ret"] == approx(2745 / 2740 - 1)


def test_categories_are_separate(out: pl.DataFrame) -> None:
    assert row(out, d(5))["fut_nk225f_night_ret"] == approx(39100 / 39000 - 1)
    assert row(out, d(6))["fut_nk225f_ret_1d"] == approx(39390 / 39000 - 1)
    assert row(out, d(6))["fut_nk225f_oi_chg"] == approx(510 / 500 - 1)


def test_a_gap_in_a_contract_gives_no_change() -> None:
    # The June contract is missing on 03-06 while the category traded: 03-07's change is unknown.
    gap = futures().filter(~((pl.col("Code") == "161060018") & (pl.col("Date") == d(6))))
    gap = gap.with_columns(
        pl.when(pl.col("Code") == "161060018").then(pl.lit("1")).otherwise(pl.lit("0")).alias("CentralContractMonthFlag")
    ).filter(pl.col("DerivativesProductCategory") == "TOPIXF")
    res = futures_features(gap, categories=("TOPIXF",))
    assert row(res, d(7))["fut_topixf_night_ret"] is None
    assert row(res, d(8))["fut_topixf_ret_1d"] is None
    assert row(res, d(8))["fut_topixf_night_ret"] == approx(2716 / 2711 - 1)
    assert "fut_topixf_basis" not in res.columns  # no TOPIX given


def test_range_cut() -> None:
    res = futures_features(futures(), TOPIX, start=d(6), end=d(11))
    assert res["Date"].to_list() == [d(6), d(7), d(8), d(11)]
    # 03-06 still gets 03-05's end-of-day values: the history before `start` was passed.
    assert row(res, d(6))["fut_topixf_ret_1d"] == approx(2710 / 2700 - 1)
