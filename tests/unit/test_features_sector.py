"""Sector membership as of each Date, and sector windows over the DAILY sector series."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import polars as pl
import pytest

from gogoku.features.sector import (
    SECTOR_FEATURES,
    Z_IN_SECTOR_SOURCES,
    add_sector_features,
    attach_listed_info,
)

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
            row = {"Code": code, "Date": D[t], "Sector33Code": sector, "returns_1d": ret(k, t),
                   "returns_5d": 0.1 * ret(k, t + 1), "returns_20d": 0.3 * ret(k, t + 2)}
            # The other z_in_sec sources: arbitrary per-stock values.
            for j, name in enumerate(Z_IN_SECTOR_SOURCES[3:]):
                row[name] = (j + 1) * ret(k, t + 3 + j)
            rows.append(row)
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


def sector_returns(t: int) -> list[float]:
    return [ret(k, t) for code, (s, k) in MEMBERS.items() if s == "0050" and (code, t) != MISSING]


def test_daily_mean_breadth_and_dispersion(out: pl.DataFrame) -> None:
    for t in (3, 10):
        vals = sector_returns(t)
        assert at(out, "13010", t, "sec_ret_1d_mean") == pytest.approx(statistics.mean(vals))
        assert at(out, "13010", t, "sec_breadth") == pytest.approx(sum(v > 0 for v in vals) / len(vals))
        assert at(out, "13010", t, "sec_dispersion") == pytest.approx(statistics.stdev(vals))
    t = 40
    want = statistics.mean(statistics.stdev(sector_returns(s)) for s in range(t - 19, t + 1))
    assert at(out, "13020", t, "sec_dispersion_20") == pytest.approx(want)
    breadth = statistics.mean(
        sum(v > 0 for v in sector_returns(s)) / len(sector_returns(s)) for s in range(t - 19, t + 1)
    )
    assert at(out, "13020", t, "sec_breadth_20") == pytest.approx(breadth)
    assert at(out, "14010", t, "sec_dispersion") is None  # one member: no spread


def test_sector_index_gap_and_long_windows(out: pl.DataFrame) -> None:
    t = 45
    # The compounded median index; the 5/20 moving-average ratio does not depend on its base.
    index = [1.0]
    for s in range(1, t + 1):
        index.append(index[-1] * (1 + sector_median(s)))
    want = (sum(index[t - 4 : t + 1]) / 5) / (sum(index[t - 19 : t + 1]) / 20) - 1
    assert at(out, "13030", t, "sec_gap_5_20") == pytest.approx(want)
    assert at(out, "13010", 18, "sec_gap_5_20") is None
    want10 = math.prod(1 + sector_median(s) for s in range(t - 9, t + 1)) - 1
    assert at(out, "13010", t, "sec_ret_10d_eq") == pytest.approx(want10)
    # returns_1d is given from day 0 here, so the 60-day windows first close on day 59.
    assert at(out, "13010", 58, "sec_ret_60d_eq") is None
    meds = [sector_median(s) for s in range(60)]
    assert at(out, "13010", 59, "sec_ret_60d_eq") == pytest.approx(math.prod(1 + m for m in meds) - 1)
    assert at(out, "13010", 59, "sec_vol_60") == pytest.approx(statistics.stdev(meds) * math.sqrt(252))


def test_relative_rank_and_correlation(out: pl.DataFrame) -> None:
    t = 33
    assert at(out, "13020", t, "rel_to_sec_1d") == pytest.approx(ret(1, t) - sector_median(t))
    r20 = {k: 0.3 * ret(k, t + 2) for k in (0, 1, 2)}
    order = sorted(r20, key=r20.get)
    for rank, k in enumerate(order, start=1):
        assert at(out, f"130{k + 1}0", t, "rank_in_sec_returns_20d") == pytest.approx((rank - 0.5) / 3 - 0.5)
    assert at(out, "14010", t, "rank_in_sec_returns_20d") is None
    vals = [1 * ret(k, t + 3) for k in (0, 1, 2)]  # volatility_20d of the members that day
    want = (vals[2] - statistics.mean(vals)) / statistics.stdev(vals)
    assert at(out, "13030", t, "z_in_sec_volatility_20d") == pytest.approx(want)
    assert at(out, "14010", 59, "corr_to_sec_60") == pytest.approx(1.0)
    assert at(out, "14010", 58, "corr_to_sec_60") is None


def test_stocks_without_a_sector_get_no_sector_statistics() -> None:
    rows = stock_rows().with_columns(
        pl.when(pl.col("Code").is_in(["13020", "13030"])).then(None).otherwise(pl.col("Sector33Code")).alias("Sector33Code")
    )
    out = add_sector_features(rows.lazy()).collect()
    lone = out.filter(pl.col("Code") == "13020", pl.col("Date") == D[30])
    for name in ("sec_ret_1d_eq", "z_in_sec_returns_5d", "rank_in_sec_returns_20d", "beta_to_sec_60"):
        assert lone[name].item() is None, name
    # 13010 is now alone in its sector: its sector return is its own.
    assert at(out, "13010", 30, "sec_ret_1d_eq") == pytest.approx(ret(0, 30))
