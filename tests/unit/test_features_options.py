"""opt_*: Nikkei 225 option end-of-day values, usable the next session, attached per Date."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.features.options import OPTION_FEATURES, REQUIRED, add_option_features

D = dt.date


def chain(day: dt.date) -> list[dict]:
    rows = []
    # (month, last trading day, strike, put?, iv %, oi, volume)
    spec = [
        ("2024-10", D(2024, 11, 1), 39000.0, True, 30.0, 0.0, 0.0),  # expires on the day: not a live month
        ("2024-11", D(2024, 11, 7), 37000.0, True, 25.0, 100.0, 10.0),
        ("2024-11", D(2024, 11, 7), 37000.0, False, 24.0, 50.0, 20.0),
        ("2024-11", D(2024, 11, 7), 39000.0, True, 20.0, 100.0, 10.0),
        ("2024-11", D(2024, 11, 7), 39000.0, False, 18.0, 50.0, 20.0),
        ("2024-11", D(2024, 11, 7), 41000.0, True, 17.0, 100.0, 10.0),
        ("2024-11", D(2024, 11, 7), 41000.0, False, 16.0, 50.0, 20.0),
        ("2024-11", D(2024, 11, 7), 40875.0, False, 99.0, 0.0, 0.0),  # farther from 1.05 x spot than 41000
        ("2024-12", D(2024, 12, 12), 39000.0, True, 22.0, 100.0, 10.0),
        ("2024-12", D(2024, 12, 12), 39000.0, False, 20.0, 50.0, 20.0),
    ]
    for i, (cm, ltd, k, put, iv, oi, vol) in enumerate(spec):
        rows.append({"Date": day, "Code": f"1{3 if put else 4}{i:07d}", "ContractMonth": cm, "StrikePrice": k,
                     "PutCallDivision": "1" if put else "2", "LastTradingDay": ltd, "UnderlyingPrice": 39000.0,
                     "ImpliedVolatility": iv, "OpenInterest": oi, "Volume": vol})
    return rows


def test_option_features_next_session() -> None:
    # 2024-12-30's chain reuses the same months: they are all past their last trading day by then.
    opts = pl.LazyFrame(chain(D(2024, 11, 1)) + chain(D(2024, 12, 30)))
    assert set(REQUIRED) <= set(opts.collect_schema())
    days = [D(2024, 11, 1), D(2024, 11, 5), D(2024, 11, 6), D(2025, 1, 6)]
    rows = pl.LazyFrame({"Code": ["13010"] * 4 + ["13020"] * 4, "Date": days * 2})
    out = add_option_features(rows, opts).collect()
    assert set(OPTION_FEATURES) <= set(out.columns) and out.height == 8
    a = out.filter(pl.col("Code") == "13010").sort("Date")
    # Fri 11-01's end-of-day values are used on Tue 11-05 (11-04 is a holiday), by every stock.
    assert a["is_opt_valid"].to_list() == [0.0, 1.0, 0.0, 1.0]
    row = a.row(1, named=True)
    assert row["opt_atm_iv_near"] == pytest.approx(0.19)
    assert row["opt_atm_iv_next"] == pytest.approx(0.21)
    assert row["opt_term_slope"] == pytest.approx(0.02)
    assert row["opt_skew_near"] == pytest.approx(0.25 - 0.16)
    assert row["opt_pc_oi_ratio"] == pytest.approx(400 / 200)
    assert row["opt_pc_vol_ratio"] == pytest.approx(40 / 80)
    assert row["opt_days_to_expiry"] == 6.0
    assert out.filter(pl.col("Date") == D(2024, 11, 5))["opt_atm_iv_near"].to_list() == pytest.approx([0.19, 0.19])
    # 12-30's chain has no live month: ratios only, on 2025-01-06 after the year-end closure.
    last = a.row(3, named=True)
    assert last["opt_atm_iv_near"] is None and last["opt_pc_oi_ratio"] == pytest.approx(2.0)
