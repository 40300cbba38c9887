"""Sector membership as of each Date, and sector windows over the DAILY sector series."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import polars as pl
import pytest

from gogoku.features.sector import SECTOR_FEATURES, add_sector_features, attach_listed_info

D = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(70)]


def test_listed_info_is_taken_as_of_each_date() -> None:
    rows = pl.DataFrame({"Code": "13010", "Date": [D[0], D[5], D[10], D[20]]})
    listed = pl.DataFrame(
        {
            "Date": [D[3], D[10], D[3]],
            "Code": ["13010", "13010", "99990"],
            "MarketCode": ["0111", "0112", "0113"],
            "Sector33Code": ["0050", "3050", "9999"],
            "Sector17Code": ["1", "9", "17"],
        }
    )
    out = attach_listed_info(rows.lazy(), listed.lazy()).collect()
    assert out["Date"].to_list() == [D[0], D[5], D[10], D[20]]
    # D0 precedes every snapshot: the first one; D5 -> snapshot D3; D10 and D20 -> snapshot D10.
    assert out["Sector33Code"].to_list() == ["0050", "0050", "3050", "3050"]
    assert out["Sector17Code"].to_list() == ["1", "1", "9", "9"]
    assert out["MarketCode"].to_list() == ["0111", "0111", "0112", "0112"]
    assert out["Section"].to_list() == ["TSEPrime", "TSEPrime", "TSEStandard", "TSEStandard"]


def ret(k: int, t: int) -> float:
    return 0.01 * math.sin(0.9 * t * (k + 1) + k) + 0.002 * k


MEMBERS = {"13010": ("0050", 0), "13020": ("0050", 1), "13030": ("0050", 2), "14010": ("3050", 3)}
MISSING = ("13030", 10)  # 13030 does not trade on day 10


def stock_rows() -> pl.DataFrame:
    rows = []
    for code, (sector, k) in MEMBERS.items():
        for t in range(len(D)):
            if (code, t) == MISSING:
                continue
            # returns_5d/20d are arbitrary stock inputs here; the sector windows must not use them.
            rows.append(
                {"Code": code, "Date": D[t], "Sector33Code": sector, "returns_1d": ret(k, t),
                 "returns_5d": 0.1 * ret(k, t + 1), "returns_20d": 0.3 * ret(k, t + 2)}
            )
    return pl.DataFrame(rows).sort("Code", "Date")


def sector_median(t: int) -> float:
    vals = [ret(k, t) for code, (s, k) in MEMBERS.items() if s == "0050" and (code, t) != MISSING]
    return statistics.median(vals)


@pytest.fixture(scope="module")
def out() -> pl.DataFrame:
    return add_sector_features(stock_rows().lazy()).collect()


def at(df: pl.DataFrame, code: str, t: int, name: str) -> float | None:
    return df.filter((pl.col("Code") == code) & (pl.col("Date") == D[t]))[name].item()


def test_declared_columns_and_rows(out: pl.DataFrame) -> None:
    assert out.height == stock_rows().height
    assert sorted(c for c in out.columns if c not in stock_rows().columns) == sorted(SECTOR_FEATURES)
    assert out.select("Code", "Date").equals(stock_rows().select("Code", "Date"))


def test_daily_sector_return_and_count(out: pl.DataFrame) -> None:
    assert at(out, "13010", 3, "sec_ret_1d_eq") == pytest.approx(sector_median(3))
    assert at(out, "13010", 3, "sec_member_cnt") == 3.0
    # Day 10: two members traded, the median is their mean.
    assert at(out, "13020", 10, "sec_member_cnt") == 2.0
    assert at(out, "13020", 10, "sec_ret_1d_eq") == pytest.approx((ret(0, 10) + ret(1, 10)) / 2)
    # One-member sector: its own return.
    assert at(out, "14010", 7, "sec_ret_1d_eq") == pytest.approx(ret(3, 7))


def test_windows_run_over_sector_dates_not_stock_rows(out: pl.DataFrame) -> None:
    # 5 sector DAYS (not 5 member rows) compounded; every member sees the same value that day.
    t = 12
    want5 = math.prod(1 + sector_median(s) for s in range(t - 4, t + 1)) - 1
    for code in ("13010", "13020", "13030"):
        assert at(out, code, t, "sec_ret_5d_eq") == pytest.approx(want5)
    want20 = math.prod(1 + sector_median(s) for s in range(30 - 19, 31)) - 1
    assert at(out, "13010", 30, "sec_ret_20d_eq") == pytest.approx(want20)
    assert at(out, "13010", 18, "sec_ret_20d_eq") is None
    meds = [sector_median(s) for s in range(30 - 19, 31)]
    assert at(out, "13010", 30, "sec_vol_20") == pytest.approx(statistics.stdev(meds) * math.sqrt(252))
    assert at(out, "13010", 30, "sec_mom_20") == pytest.approx(statistics.mean(meds) / statistics.stdev(meds))


def test_relative_and_within_sector_z(out: pl.DataFrame) -> None:
    t = 25
    sec5 = at(out, "13020", t, "sec_ret_5d_eq")
    assert at(out, "13020", t, "rel_to_sec_5d") == pytest.approx(0.1 * ret(1, t + 1) - sec5)
    vals = [0.1 * ret(k, t + 1) for k in (0, 1, 2)]
    want = (vals[1] - statistics.mean(vals)) / statistics.stdev(vals)
    assert at(out, "13020", t, "z_in_sec_returns_5d") == pytest.approx(want)
    # A single-member sector has no spread: null, not 0.
    assert at(out, "14010", t, "z_in_sec_returns_5d") is None


def test_beta_to_sector(out: pl.DataFrame) -> None:
    # The one-member sector's series is the stock itself: beta exactly 1 once 60 days are in
    # (returns_1d is given from day 0 here, so day 59 closes the first window).
    assert at(out, "14010", 58, "beta_to_sec_60") is None
    assert at(out, "14010", 59, "beta_to_sec_60") == pytest.approx(1.0)
