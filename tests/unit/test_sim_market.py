"""The simulated market: determinism, calendar, price mechanics, splits, TOPIX, statements, futures, truth."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku import calendar as cal
from gogoku.errors import InputError
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.base import FAMILIES, SECTORS33
from gogoku.sim.market import SimMarket

START, END = dt.date(2022, 1, 4), dt.date(2023, 12, 29)
SHORT_END = dt.date(2023, 3, 31)
RAW = ["Date", "Code", "Open", "High", "Low", "Close", "UpperLimit", "LowerLimit", "Volume", "TurnoverValue",
       "AdjustmentFactor"]


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=7, n_stocks=300, start=START, end=END)


@pytest.fixture(scope="module")
def short_market() -> SimMarket:
    """The same seed, ending earlier."""
    return SimMarket(seed=7, n_stocks=300, start=START, end=SHORT_END)


def test_same_seed_same_data_and_another_seed_differs() -> None:
    a = SimMarket(seed=3, n_stocks=20, start=dt.date(2024, 1, 4), end=dt.date(2024, 3, 29))
    b = SimMarket(seed=3, n_stocks=20, start=dt.date(2024, 1, 4), end=dt.date(2024, 3, 29))
    c = SimMarket(seed=4, n_stocks=20, start=dt.date(2024, 1, 4), end=dt.date(2024, 3, 29))
    assert_frame_equal(a.daily_quotes(), b.daily_quotes())
    assert_frame_equal(a.statements(), b.statements())
    assert_frame_equal(a.futures(), b.futures())
    assert_frame_equal(a.truth(), b.truth())
    assert not a.daily_quotes()["Close"].equals(c.daily_quotes()["Close"])


def test_an_earlier_end_is_a_prefix(market: SimMarket, short_market: SimMarket) -> None:
    long_q = market.daily_quotes(end=SHORT_END)
    short_q = short_market.daily_quotes()
    assert_frame_equal(long_q.select(RAW), short_q.select(RAW))
    # Adjusted prices are back-adjusted to each market's end: they differ by the later splits only.
    later = (market.daily_quotes(start=SHORT_END + dt.timedelta(days=1))
             .group_by("Code").agg(pl.col("AdjustmentFactor").product().alias("later")))
    joined = long_q.join(short_q.select("Date", "Code", pl.col("AdjustmentClose").alias("short_adj")),
                         on=["Date", "Code"]).join(later, on="Code")
    np.testing.assert_allclose(joined["AdjustmentClose"], joined["short_adj"] * joined["later"], rtol=1e-12)
    assert (later["later"] != 1).any(), "the fixture should hold a split after SHORT_END"
    assert_frame_equal(market.topix(end=SHORT_END), short_market.topix())
    assert_frame_equal(market.statements(end=SHORT_END), short_market.statements())
    assert_frame_equal(market.futures(end=SHORT_END), short_market.futures())
    assert_frame_equal(market.listed_info(SHORT_END), short_market.listed_info(SHORT_END))
    # The truth at a date is fixed at that date's close: later sessions never change it.
    assert_frame_equal(market.truth().filter(pl.col("Date") <= SHORT_END), short_market.truth())


def test_dates_follow_the_jpx_calendar(market: SimMarket) -> None:
    quotes = market.daily_quotes()
    sessions = cal.business_days(START, END)
    assert quotes["Date"].unique().sort().to_list() == sessions
    # Only listed codes are quoted: listings and delistings change the count a little over time.
    per_day = quotes.group_by("Date").len().sort("Date")["len"].to_numpy()
    np.testing.assert_array_equal(per_day, market.life.listed_at(market.days).sum(axis=1))
    assert per_day.min() >= 270 and per_day.max() <= 300 and len(set(per_day)) > 1
    assert dt.date(2023, 1, 3) not in sessions and dt.date(2022, 12, 30) in sessions
    calendar = market.trading_calendar(dt.date(2022, 12, 28), dt.date(2023, 1, 5))
    assert calendar["HolidayDivision"].to_list() == ["1", "1", "1", "0", "0", "0", "0", "1", "1"]  # 31 Dec - 3 Jan
    full = market.trading_calendar()
    assert full.height == (END - START).days + 1
    assert full.filter(pl.col("HolidayDivision") == "1")["Date"].to_list() == sessions
    statements = market.statements()
    assert statements["DisclosedDate"].is_in(sessions).all()
    assert market.futures()["Date"].unique().sort().to_list() == sessions


def test_codes_sectors_and_markets_look_like_jpx(market: SimMarket) -> None:
    listed = market.listed_info(dt.date(2023, 6, 1))
    assert listed.columns == list(ENDPOINTS["listed_info"].schema)
    assert listed["Date"].unique().to_list() == [dt.date(2023, 6, 1)]
    assert listed["Code"].n_unique() == market.daily_quotes(dt.date(2023, 6, 1), dt.date(2023, 6, 1)).height
    assert listed["Code"].str.contains(r"^[1-9]\d{3}0$").all()
    assert set(listed["Sector33Code"]) <= {s[0] for s in SECTORS33}
    assert set(listed["Sector17Code"]) <= {str(i) for i in range(1, 18)}
    assert listed["Sector33Code"].n_unique() > 20
    assert set(listed["MarketCode"]) == {"0111", "0112", "0113"}
    assert set(listed["MarginCode"]) <= {"1", "2", "3"}
    assert listed.filter(pl.col("MarketCode") == "0113")["ScaleCategory"].unique().to_list() == ["-"]
    assert market.listed_info(dt.date(2021, 12, 30)).height == 0  # before the simulated span


def test_ohlc_volume_and_limits_are_consistent(market: SimMarket) -> None:
    q = market.daily_quotes()
    assert q.columns == list(ENDPOINTS["daily_quotes"].schema)
    assert q.schema == ENDPOINTS["daily_quotes"].schema
    bad = q.filter(
        (pl.col("High") < pl.max_horizontal("Open", "Close")) | (pl.col("Low") > pl.min_horizontal("Open", "Close"))
        | (pl.col("Low") <= 0) | (pl.col("Volume") < 100) | (pl.col("Volume") % 100 != 0)
    )
    assert bad.height == 0
    assert set(q["UpperLimit"]) <= {"0", "1"} and set(q["LowerLimit"]) <= {"0", "1"}
    # Returns stay inside the daily limit band and look like equities (about 2% a day).
    ret = (q.sort("Code", "Date").select(
        (pl.col("AdjustmentClose") / pl.col("AdjustmentClose").shift(1).over("Code") - 1).alias("r")
    )["r"].drop_nulls())
    assert ret.abs().max() < 0.6
    assert 0.012 < ret.std() < 0.035
    vwap = q["TurnoverValue"] / q["Volume"]
    assert ((vwap >= q["Low"] - 1) & (vwap <= q["High"] + 1)).all()


def test_splits_are_continuous_in_adjusted_prices(market: SimMarket) -> None:
    q = market.daily_quotes().sort("Code", "Date").with_columns(
        (pl.col("Close") / pl.col("Close").shift(1).over("Code")).alias("raw_ratio"),
        (pl.col("AdjustmentClose") / pl.col("AdjustmentClose").shift(1).over("Code")).alias("adj_ratio"),
    )
    ex = q.filter(pl.col("AdjustmentFactor") != 1)
    assert ex.height >= 3
    splits = ex.filter(pl.col("AdjustmentFactor") < 1)
    assert splits.height >= 1
    # A 1:2 split halves the raw price on the ex-date; the adjusted series does not jump.
    assert (splits["raw_ratio"] < splits["AdjustmentFactor"] * 1.35).all()
    assert ((ex["adj_ratio"] - 1).abs() < 0.35).all()
    np.testing.assert_allclose(ex["adj_ratio"], ex["raw_ratio"] / ex["AdjustmentFactor"], rtol=1e-9)
    # On the last session adjusted equals raw; before a split it is scaled by the factors after it.
    last = q.filter(pl.col("Date") == END)
    np.testing.assert_allclose(last["AdjustmentClose"], last["Close"])
    np.testing.assert_allclose(q["AdjustmentVolume"] * q["AdjustmentClose"], q["Volume"] * q["Close"], rtol=1e-9)


def test_topix_is_the_cap_weighted_index_of_prime_and_standard(market: SimMarket) -> None:
    topix = market.topix()
    assert 1500 <= topix["Open"][0] <= 2100
    assert topix.filter((pl.col("High") < pl.max_horizontal("Open", "Close"))
                        | (pl.col("Low") > pl.min_horizontal("Open", "Close"))).height == 0
    # Recompute close-to-close returns from the quotes, the constituents and the shares outstanding.
    q = market.daily_quotes()
    wide = lambda col: q.pivot(on="Code", index="Date", values=col, sort_columns=True).sort("Date").drop("Date")  # noqa: E731
    close, factor = wide("Close"), wide("AdjustmentFactor")
    quoted = np.searchsorted(market.universe.codes, close.columns)  # codes ever listed in the span
    members = market.index_members[1:, quoted]
    assert market.index_members[:, np.setdiff1d(np.arange(market.n_stocks), quoted)].sum() == 0
    close, factor = close.to_numpy(), factor.fill_null(1.0).to_numpy()
    shares = market.universe.shares0[quoted] / np.cumprod(factor, axis=0)
    cap = np.nan_to_num((close * shares)[:-1] * members)
    assert (members.sum(axis=1) > 100).all()
    ret = close[1:] / (close[:-1] * factor[1:]) - 1  # split-neutral, as the index divisor makes it
    expected = (cap * np.nan_to_num(ret)).sum(1) / cap.sum(1)
    got = topix["Close"].to_numpy()
    np.testing.assert_allclose(got[1:] / got[:-1] - 1, expected, atol=2e-5)  # levels are rounded to 0.01


def test_statements_are_quarterly_cumulative_and_after_the_period(market: SimMarket) -> None:
    every = market.statements()
    spec = ENDPOINTS["statements"]
    assert every.columns == list(spec.schema) and every.schema == spec.schema
    assert every.sort("DisclosedDate", "DisclosedTime", "LocalCode").equals(every)
    assert every.select("LocalCode", "DisclosureNumber").is_unique().all()
    # Forecast revisions between statements carry forecasts only, for the fiscal year in force.
    revisions = every.filter(pl.col("TypeOfDocument") == "EarnForecastRevision")
    assert 0.1 < revisions.height / every.height < 0.25
    assert set(revisions["TypeOfCurrentPeriod"]) == {"FY"}
    assert revisions["NetSales"].null_count() == revisions.height
    assert revisions["ForecastProfit"].null_count() == 0
    assert (revisions["DisclosedDate"] <= revisions["CurrentFiscalYearEndDate"] + dt.timedelta(days=60)).all()
    st = every.filter(pl.col("TypeOfDocument") != "EarnForecastRevision")
    assert set(st["TypeOfCurrentPeriod"]) == {"1Q", "2Q", "3Q", "FY"}
    assert (st["DisclosedDate"] > st["CurrentPeriodEndDate"]).all()
    assert ((st["DisclosedDate"] - st["CurrentPeriodEndDate"]).dt.total_days() < 60).all()
    # During the session, at the close (15:00, 15:30 from 2024-11-05) and in the evening.
    assert set(st["DisclosedTime"]) == {"11:30:00", "13:00:00", "15:00:00", "15:30:00", "16:00:00", "17:00:00",
                                        "18:30:00"}
    per_stock_year = st.group_by("LocalCode", "CurrentFiscalYearEndDate").agg(
        pl.col("NetSales").sort_by("CurrentPeriodEndDate").diff().drop_nulls().min().alias("min_step"),
        pl.len().alias("n"),
    )
    assert per_stock_year["n"].max() <= 4
    assert (per_stock_year["min_step"].drop_nulls() > 0).all()  # year-to-date sales only grow
    assert st.filter(pl.col("TypeOfCurrentPeriod") == "FY")["ForecastNetSales"].null_count() == st.filter(
        pl.col("TypeOfCurrentPeriod") == "FY").height
    ifrs = st.filter(pl.col("TypeOfDocument").str.ends_with("IFRS"))
    assert ifrs["OrdinaryProfit"].null_count() == ifrs.height
    assert st["LocalCode"].n_unique() > 250


def test_truth_columns_and_oracle_rank_ic(market: SimMarket) -> None:
    truth = market.truth()
    assert truth.columns[:6] == ["Code", "Date", "exp_ret_1d", "exp_ret_5d", "exp_ret_10d", "exp_ret_20d"]
    assert truth.columns[6:] == [f"contrib_{f}_1d" for f in FAMILIES]
    assert truth.select("Code", "Date").equals(market.daily_quotes().select("Code", "Date").sort("Code", "Date"))
    assert truth.sort("Code", "Date").equals(truth)
    realized = market.daily_quotes().sort("Code", "Date").select(
        "Code", "Date", (pl.col("AdjustmentClose").shift(-1).over("Code") / pl.col("AdjustmentClose") - 1).alias("r1"))
    daily_ic = (truth.join(realized, on=["Code", "Date"]).drop_nulls("r1")
                .group_by("Date").agg(pl.corr("exp_ret_1d", "r1", method="spearman").alias("ic")))
    assert 0.03 <= daily_ic["ic"].mean() <= 0.08
    # Longer horizons accumulate the persistent terms.
    assert truth["exp_ret_20d"].std() > 5 * truth["exp_ret_1d"].std()


def test_generation_is_fast_enough() -> None:
    last = cal.calendar_bounds()[1]
    start = cal.add_business_days(last, -2999)
    t0 = time.perf_counter()
    market = SimMarket(seed=1, n_stocks=300, start=start, end=last)
    market.daily_quotes()
    market.truth()
    assert time.perf_counter() - t0 < 6  # 300 stocks x 3000 sessions (budget 3 s, doubled for a noisy box)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_stocks": 2}, "n_stocks=2"),
        ({"start": dt.date(1999, 1, 4)}, "offline JPX calendar"),
        ({"start": dt.date(2024, 1, 4), "end": dt.date(2024, 1, 4)}, "fewer than 2 business days"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        SimMarket(**kwargs)
