"""Futures features on hand-made frames: every `fut_*` formula, the central contract across a roll,
the T+0 (night session) / T+1 (end of day) timing, holiday sessions, and the rolling windows."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.errors import InputError
from gogoku.features.futures import (
    CATEGORIES,
    EOD_FEATURES,
    ON_FEATURES,
    feature_names,
    futures_features,
    nk225_spot,
)


def d(day: int) -> dt.date:
    return dt.date(2024, 3, day)


MAR_LTD, MAR_SQ = d(7), d(8)
JUN_LTD, JUN_SQ = dt.date(2024, 6, 13), dt.date(2024, 6, 14)
SEP_LTD, SEP_SQ = dt.date(2024, 9, 12), dt.date(2024, 9, 13)

# (night open, high, low, close, day close, settlement, volume, open interest, central flag)
# TOPIXF: March central on 03-04/05, June from 03-06 (the roll day). 03-09/10 is a weekend, 03-12..18 are
# left out (the product's previous session of 03-19 is 03-11), 03-20 is a TSE holiday with a session.
MAR = {
    d(4): (2700, 2710, 2690, 2705, 2712, 2712, 1000, 100, "1"),
    d(5): (2712, 2720, 2700, 2716, 2708, 2708, 1100, 110, "1"),
    d(6): (2708, 2715, 2695, 2700, 2690, 2690, 600, 60, "0"),
    d(7): (2690, 2700, 2680, 2695, 2699, 2699, 300, 20, "0"),
}
JUN = {
    d(4): (2690, 2700, 2680, 2695, 2702, 2702, 200, 30, "0"),
    d(5): (2702, 2710, 2690, 2706, 2697, 2697, 400, 50, "0"),
    d(6): (2697, 2705, 2685, 2690, 2680, 2680, 1500, 120, "1"),
    d(7): (2680, 2692, 2672, 2688, 2690, 2690, 1600, 140, "1"),
    d(8): (2690, 2700, 2688, 2696, 2710, 2710, 1700, 150, "1"),
    d(11): (2710, 2720, 2700, 2700, 2705, 2705, 1650, 155, "1"),
    d(19): (2720, 2730, 2710, 2725, 2730, 2730, 1700, 160, "1"),
    d(20): (2730, 2740, 2728, 2735, 2738, 2738, 800, 162, "1"),
    d(21): (2738, 2750, 2736, 2745, 2748, 2748, 1750, 165, "1"),
}
SEP = {day: (p - 10, p - 10, p - 10, p - 10, p - 10, p - 10, 5, 10, "0")
       for day, p in ((d(6), 2680), (d(7), 2690), (d(8), 2710), (d(11), 2705), (d(19), 2730), (d(20), 2738),
                      (d(21), 2748))}
NK = {
    d(4): (39000, 39100, 38900, 38950, 39020, 39020, 500, 500, "1"),
    d(5): (39020, 39500, 39000, 39400, 39390, 39390, 700, 510, "1"),
}
TOPIX = pl.DataFrame({"Date": [d(4), d(5), d(6), d(7), d(8), d(11), d(19), d(21)],
                      "Close": [2720.0, 2715.0, 2700.0, 2705.0, 2722.0, 2715.0, 2740.0, 2755.0]})
NK_SPOT = pl.DataFrame({"Date": [d(4), d(5)], "Close": [39100.0, 39400.0]})


def rows(cat: str, code: str, month: str, ltd: dt.date, sq: dt.date, bars: dict, emergency: str = "002") -> list[dict]:
    return [
        {
            "Date": day, "Code": code, "DerivativesProductCategory": cat,
            "NightSessionOpen": float(no), "NightSessionHigh": float(nh), "NightSessionLow": float(nl),
            "NightSessionClose": float(nc), "DaySessionClose": float(dc), "WholeDayClose": float(dc),
            "SettlementPrice": float(px), "Volume": float(v), "OpenInterest": float(oi), "ContractMonth": month,
            "LastTradingDay": ltd, "SpecialQuotationDay": sq, "CentralContractMonthFlag": flag,
            "EmergencyMarginTriggerDivision": emergency,
        }
        for day, (no, nh, nl, nc, dc, px, v, oi, flag) in bars.items()
    ]


def futures() -> pl.DataFrame:
    return pl.DataFrame(
        rows("TOPIXF", "MAR", "2024-03", MAR_LTD, MAR_SQ, MAR) + rows("TOPIXF", "JUN", "2024-06", JUN_LTD, JUN_SQ, JUN)
        + rows("TOPIXF", "SEP", "2024-09", SEP_LTD, SEP_SQ, SEP)
        + rows("NK225F", "NKM", "2024-03", MAR_LTD, MAR_SQ, NK)
    )


@pytest.fixture(scope="module")
def out() -> pl.DataFrame:
    return futures_features(futures(), TOPIX, spots={"NK225F": NK_SPOT})


def row(df: pl.DataFrame, day: dt.date) -> dict:
    got = df.filter(pl.col("Date") == day)
    assert got.height == 1, f"{day}: {got.height} rows"
    return {k.removeprefix("fut_topixf_"): v for k, v in got.row(0, named=True).items()}


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-5, abs=1e-7)  # Float32 output


def test_columns_types_and_rows(out: pl.DataFrame) -> None:
    assert len(ON_FEATURES) == 5 and len(EOD_FEATURES) == 17
    names = feature_names()
    assert len(names) == 88 == len(set(names))
    assert out.columns == ["Date", *names]
    assert names[:2] == ["fut_topixf_on_ret", "fut_topixf_on_range"] and names[-1] == "fut_reitf_price_oi"
    assert all(dtype == pl.Float32 for name, dtype in out.schema.items() if name != "Date")
    # Effective dates only: 03-12 gets 03-11's end of day; 03-20 (holiday) maps to 03-21.
    assert out["Date"].to_list() == [d(4), d(5), d(6), d(7), d(8), d(11), d(12), d(19), d(21), d(22)]
    # Products without rows keep their columns, all null.
    assert out.select(pl.col("^fut_(jn400f|reitf)_.*$").null_count().sum()).sum_horizontal().item() == 2 * 22 * out.height


def test_night_session_features_are_usable_the_same_day(out: pl.DataFrame) -> None:
    first = row(out, d(4))
    assert first["on_ret"] is None  # no previous session
    assert first["on_range"] == approx(math.log(2710 / 2690))
    assert first["on_close_pos"] == approx((2705 - 2690) / (2710 - 2690))
    assert first["ret_1d"] is None and first["basis"] is None  # nothing from before 03-04
    r = row(out, d(5))
    assert r["on_ret"] == approx(2716 / 2712 - 1)
    assert r["on_range"] == approx(math.log(2720 / 2700))
    assert r["on_close_pos"] == approx(16 / 20)
    # Roll day: the June contract's night close against the June contract's previous settlement.
    r = row(out, d(6))
    assert r["on_ret"] == approx(2690 / 2697 - 1)
    assert r["on_close_pos"] == approx((2690 - 2685) / 20)
    assert row(out, d(7))["on_ret"] == approx(2688 / 2680 - 1)
    assert row(out, d(11))["on_ret"] == approx(2700 / 2710 - 1)  # Monday vs Friday
    # The product's previous session of 03-19 is 03-11.
    assert row(out, d(19))["on_ret"] == approx(2725 / 2705 - 1)
    # The night sessions of 03-20 (holiday) and 03-21 both apply on 03-21: 03-21's own wins.
    assert row(out, d(21))["on_ret"] == approx(2745 / 2738 - 1)
    # No end-of-day values of 03-19 or later reach 03-19.
    assert row(out, d(19))["ret_1d"] is None


def test_end_of_day_features_apply_from_the_next_business_day(out: pl.DataFrame) -> None:
    r = row(out, d(5))  # 03-04's end of day, March contract
    assert r["day_ret"] == approx(2712 / 2705 - 1)
    assert r["ret_1d"] is None and r["oi_chg"] is None and r["price_oi"] is None
    assert r["basis"] == approx(2712 / 2720 - 1)
    assert r["carry_ann"] == approx(math.log(2712 / 2720) * 365 / 4)  # SQ 03-08 is 4 days after 03-04
    assert r["term_spread"] == approx(2702 / 2712 - 1)
    assert r["term_carry_ann"] == approx(math.log(2702 / 2712) * 365 / (JUN_SQ - MAR_SQ).days)
    assert r["days_to_ltd"] == 3.0
    assert r["roll_flag"] is None and r["days_since_roll"] is None
    assert r["oi_share"] == approx(100 / (100 + 30))
    r = row(out, d(6))  # 03-05
    assert r["day_ret"] == approx(2708 / 2716 - 1)
    assert r["ret_1d"] == approx(2708 / 2712 - 1)
    assert r["basis"] == approx(2708 / 2715 - 1)
    assert r["days_to_ltd"] == 2.0 and r["roll_flag"] == 0.0 and r["days_since_roll"] is None
    assert r["oi_chg"] == approx(110 / 100 - 1)
    assert r["oi_share"] == approx(110 / 160)
    assert r["price_oi"] == approx(-(110 / 100 - 1))  # price down, positions added


def test_roll_day_uses_the_new_contract_only(out: pl.DataFrame) -> None:
    r = row(out, d(7))  # 03-06's end of day: June is central now
    assert r["ret_1d"] == approx(2680 / 2697 - 1)  # June vs June, not June vs March's 2708
    assert r["roll_flag"] == 1.0 and r["days_since_roll"] == 0.0
    assert r["oi_chg"] == approx(120 / 50 - 1)
    assert r["price_oi"] == approx(-(120 / 50 - 1))
    assert r["oi_share"] == approx(120 / (60 + 120 + 10))
    assert r["basis"] == approx(2680 / 2700 - 1)
    assert r["carry_ann"] == approx(math.log(2680 / 2700) * 365 / (JUN_SQ - d(6)).days)
    assert r["term_spread"] == approx(2670 / 2680 - 1)  # September vs June
    assert r["term_carry_ann"] == approx(math.log(2670 / 2680) * 365 / (SEP_SQ - JUN_SQ).days)
    assert r["days_to_ltd"] == float((JUN_LTD - d(6)).days)
    r = row(out, d(8))  # 03-07
    assert r["ret_1d"] == approx(2690 / 2680 - 1)
    assert r["roll_flag"] == 0.0 and r["days_since_roll"] == 1.0
    assert r["price_oi"] == approx(140 / 120 - 1)  # price up, positions added
    assert row(out, d(11))["days_since_roll"] == 2.0  # 03-08's, applied Monday
    assert row(out, d(12))["ret_1d"] == approx(2705 / 2710 - 1)  # 03-11's, with no futures row on 03-12


def test_holiday_session_end_of_day_moves_to_the_next_business_day(out: pl.DataFrame) -> None:
    r = row(out, d(21))
    # The end of day of 03-19 and of the 03-20 holiday session both first apply on 03-21: the later wins,
    # except where it has no value (no index close on the holiday: the basis stays 03-19's).
    assert r["ret_1d"] == approx(2738 / 2730 - 1)
    assert r["basis"] == approx(2730 / 2740 - 1)
    assert r["days_since_roll"] == 5.0  # the holiday session counts as a session of the product
    r = row(out, d(22))
    assert r["ret_1d"] == approx(2748 / 2738 - 1)
    assert r["basis"] == approx(2748 / 2755 - 1)
    assert r["days_since_roll"] == 6.0


def test_products_are_separate_and_take_their_own_underlying(out: pl.DataFrame) -> None:
    r = out.filter(pl.col("Date") == d(6)).row(0, named=True)
    assert r["fut_nk225f_ret_1d"] == approx(39390 / 39020 - 1)
    assert r["fut_nk225f_basis"] == approx(39390 / 39400 - 1)
    assert r["fut_nk225f_oi_chg"] == approx(510 / 500 - 1)
    assert r["fut_nk225f_term_spread"] is None  # no next month listed
    assert r["fut_nk225f_oi_share"] == approx(1.0)
    assert out.filter(pl.col("Date") == d(5))["fut_nk225f_on_ret"].item() == approx(39400 / 39020 - 1)
    # Without an underlying the spot-based columns are null, the rest are not.
    res = futures_features(futures(), categories=("TOPIXF",))
    assert res.columns == ["Date", *feature_names(("TOPIXF",))]
    assert res["fut_topixf_basis"].null_count() == res.height
    assert res["fut_topixf_carry_ann"].null_count() == res.height
    assert res.filter(pl.col("Date") == d(6))["fut_topixf_ret_1d"].item() == approx(2708 / 2712 - 1)


def test_a_gap_in_a_contract_gives_no_change() -> None:
    # The June contract is missing on 03-07 while the product traded: 03-08's changes are unknown.
    gap = futures().filter(~((pl.col("Code") == "JUN") & (pl.col("Date") == d(7))))
    res = futures_features(gap, TOPIX, categories=("TOPIXF",))
    r = row(res, d(8))
    assert r["on_ret"] is None and r["oi_chg"] is None
    assert row(res, d(11))["ret_1d"] is None and row(res, d(11))["price_oi"] is None
    assert row(res, d(11))["on_ret"] == approx(2700 / 2710 - 1)


def test_emergency_margin_duplicate_and_two_central_rows() -> None:
    extra = pl.DataFrame(rows("TOPIXF", "JUN", "2024-06", JUN_LTD, JUN_SQ,
                              {d(7): (1, 1, 1, 1, 1, 1, 1, 1, "1")}, emergency="001"))
    res = futures_features(pl.concat([extra, futures()]), TOPIX, categories=("TOPIXF",))
    assert row(res, d(8))["ret_1d"] == approx(2690 / 2680 - 1)  # the normal ("002") row
    # Two rows flagged central: the nearest month is used.
    both = futures().with_columns(pl.when(pl.col("Code") == "SEP").then(pl.lit("1"))
                                  .otherwise(pl.col("CentralContractMonthFlag")).alias("CentralContractMonthFlag"))
    res = futures_features(both, TOPIX, categories=("TOPIXF",))
    assert row(res, d(8))["ret_1d"] == approx(2690 / 2680 - 1)


def test_range_cut_and_missing_columns() -> None:
    res = futures_features(futures(), TOPIX, start=d(6), end=d(11))
    assert res["Date"].to_list() == [d(6), d(7), d(8), d(11)]
    # 03-06 still gets 03-05's end-of-day values: the history before `start` was passed.
    assert row(res, d(6))["ret_1d"] == approx(2708 / 2712 - 1)
    with pytest.raises(InputError, match="OpenInterest"):
        futures_features(futures().drop("OpenInterest"))


def test_rolling_windows_match_hand_computation() -> None:
    # One contract over 70 sessions with made-up prices; windows checked against plain Python statistics.
    days = business_days(dt.date(2024, 1, 4), dt.date(2024, 5, 31))[:70]
    rng = np.random.default_rng(3)
    settle = 2500 * np.cumprod(1 + rng.normal(0, 0.01, 70))
    night = settle * (1 + rng.normal(0, 0.003, 70))
    oi = 1000 + rng.integers(0, 200, 70)
    vol = 500 + rng.integers(0, 300, 70)
    spot = settle * (1 + 0.002 + rng.normal(0, 0.0005, 70))
    bars = {day: (night[i], night[i] * 1.01, night[i] * 0.99, night[i], settle[i], settle[i], vol[i], oi[i], "1")
            for i, day in enumerate(days)}
    fut = pl.DataFrame(rows("TOPIXF", "JUN", "2024-06", JUN_LTD, JUN_SQ, bars))
    res = futures_features(fut, pl.DataFrame({"Date": days, "Close": spot}), categories=("TOPIXF",))
    on_ret = [night[i] / settle[i - 1] - 1 for i in range(1, 70)]  # on_ret[k] belongs to session k + 1
    ret = [settle[i] / settle[i - 1] - 1 for i in range(1, 70)]
    basis = [settle[i] / spot[i] - 1 for i in range(70)]

    def z(xs: list[float]) -> float:
        w = xs[-60:]
        return (w[-1] - statistics.mean(w)) / statistics.stdev(w)

    eod = row(res, days[-1])  # ON of the last session, EOD of the one before
    assert eod["on_ret_z"] == approx(z(on_ret))
    assert eod["on_ret_5d"] == approx(math.prod(1 + x for x in on_ret[-5:]) - 1)
    assert eod["ret_5d"] == approx(math.prod(1 + x for x in ret[-6:-1]) - 1)
    assert eod["rv_20d"] == approx(statistics.stdev(ret[-21:-1]) * math.sqrt(252))
    assert eod["basis_z"] == approx(z(basis[:-1]))
    assert eod["oi_z"] == approx(z([float(x) for x in oi[:-1]]))
    assert eod["vol_z"] == approx(z([math.log1p(x) for x in vol[:-1]]))
    # Windows need enough values: 30 for the z-scores, 10 for rv_20d, all 5 for the 5-session sums.
    early = row(res, days[10])
    assert early["on_ret_z"] is None and early["basis_z"] is None and early["rv_20d"] is None
    assert row(res, days[11])["rv_20d"] == approx(statistics.stdev(ret[:10]) * math.sqrt(252))
    assert row(res, days[5])["on_ret_5d"] == approx(math.prod(1 + x for x in on_ret[:5]) - 1)
    assert row(res, days[4])["on_ret_5d"] is None
    assert row(res, days[30])["on_ret_z"] == approx((on_ret[29] - statistics.mean(on_ret[:30])) / statistics.stdev(on_ret[:30]))
    assert row(res, days[29])["on_ret_z"] is None


def test_nk225_spot_from_index_options() -> None:
    opt = pl.DataFrame({"Date": [d(4), d(4), d(5)], "UnderlyingPrice": [39100.0, 39100.0, 39400.0]})
    assert nk225_spot(opt).to_dicts() == [{"Date": d(4), "Close": 39100.0}, {"Date": d(5), "Close": 39400.0}]
    assert set(CATEGORIES) == {"TOPIXF", "NK225F", "JN400F", "REITF"}
