"""Simulated index futures and Nikkei 225 options: JPX calendar rules, contract rolls, pricing sanity."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku import calendar as cal
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim import derivatives as sd
from gogoku.sim.market import SimMarket

START, END = dt.date(2023, 1, 4), dt.date(2023, 12, 29)
SHORT_END = dt.date(2023, 6, 30)


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=5, n_stocks=120, start=START, end=END)


@pytest.fixture(scope="module")
def fut(market: SimMarket) -> pl.DataFrame:
    return market.futures()


@pytest.fixture(scope="module")
def opt(market: SimMarket) -> pl.DataFrame:
    return market.index_option()


def _mi(year: int, month: int) -> np.ndarray:
    return np.array([sd.month_index(year, month)])


def _d(x: np.ndarray) -> dt.date:
    return x.astype("datetime64[D]").item()


def test_sq_is_the_second_friday_or_the_business_day_before() -> None:
    # 2024-03-08 and 2023-06-09 are plain second Fridays.
    assert _d(sd.sq_dates(_mi(2024, 3))[0]) == dt.date(2024, 3, 8)
    assert _d(sd.sq_dates(_mi(2023, 6))[0]) == dt.date(2023, 6, 9)
    # A month starting on a Friday: the 1st is the first Friday, the 8th the second (2024-11).
    assert _d(sd.sq_dates(_mi(2024, 11))[0]) == dt.date(2024, 11, 8)
    # Holiday shift: every second Friday that is not a session moves to the business day before it.
    months = np.arange(sd.month_index(2016, 1), sd.month_index(2025, 12) + 1)
    sq = sd.sq_dates(months)
    first = (months - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")
    weekday = (first.astype(np.int64) + 3) % 7
    friday = first + ((4 - weekday) % 7 + 7).astype("timedelta64[D]")
    shifted = sq != friday
    assert shifted.any(), "the calendar should hold a holiday on some second Friday"
    for f, s in zip(friday[shifted], sq[shifted], strict=True):
        assert not cal.is_business_day(_d(f))
        assert _d(s) == cal.previous_business_day(_d(f))
    assert all(cal.is_business_day(_d(s)) for s in sq)


def test_last_trading_day_is_the_business_day_before_sq() -> None:
    sq = sd.sq_dates(_mi(2024, 3))
    assert _d(sd.last_trading_days(sq)[0]) == dt.date(2024, 3, 7)
    sq = sd.sq_dates(_mi(2024, 1))  # SQ 2024-01-12 (Fri) -> LTD 2024-01-11
    assert _d(sq[0]) == dt.date(2024, 1, 12)
    assert _d(sd.last_trading_days(sq)[0]) == dt.date(2024, 1, 11)


def test_futures_schema_products_and_contract_months(market: SimMarket, fut: pl.DataFrame) -> None:
    spec = ENDPOINTS["futures"]
    assert fut.schema == spec.schema
    assert set(fut["DerivativesProductCategory"]) == {"TOPIXF", "NK225F", "JN400F", "REITF"}
    assert fut["Date"].unique().sort().to_list() == cal.business_days(START, END)
    assert fut.select(pl.struct("Date", "Code").is_unique().all()).item()
    per = fut.group_by("Date", "DerivativesProductCategory").agg(
        pl.len().alias("n"), (pl.col("CentralContractMonthFlag") == "1").sum().alias("central"))
    assert per["n"].unique().to_list() == [3] and per["central"].unique().to_list() == [1]
    assert fut["ContractMonth"].str.slice(5).is_in(["03", "06", "09", "12"]).all()
    assert ((fut["LastTradingDay"] >= fut["Date"]) & (fut["LastTradingDay"] < fut["SpecialQuotationDay"])).all()
    # Code: 16 + year digit + month + underlying id; 2023 -> 8.
    row = fut.filter((pl.col("Date") == dt.date(2023, 3, 1)) & (pl.col("DerivativesProductCategory") == "TOPIXF")
                     & (pl.col("ContractMonth") == "2023-03")).row(0, named=True)
    assert row["Code"] == "168030005"
    assert row["LastTradingDay"] == dt.date(2023, 3, 9) and row["SpecialQuotationDay"] == dt.date(2023, 3, 10)
    assert fut["MorningSessionOpen"].null_count() == fut.height  # no morning session since 2011
    assert (fut["Volume(OnlyAuction)"] <= fut["Volume"]).all()
    assert (fut["EmergencyMarginTriggerDivision"] == "002").all()


def test_prices_on_tick_grid_and_sessions_consistent(fut: pl.DataFrame) -> None:
    ticks = {p.category: p.tick for p in sd.PRODUCTS}
    for cat, tick in ticks.items():
        rows = fut.filter(pl.col("DerivativesProductCategory") == cat)
        for col in ("WholeDayOpen", "WholeDayHigh", "WholeDayLow", "WholeDayClose", "DaySessionOpen",
                    "NightSessionClose", "SettlementPrice"):
            v = rows[col].drop_nulls().to_numpy()
            assert np.allclose(np.round(v / tick) * tick, v), (cat, col)
    for prefix in ("WholeDay", "NightSession", "DaySession"):
        o, h, lo, c = (pl.col(f"{prefix}{x}") for x in ("Open", "High", "Low", "Close"))
        assert fut.filter((h < pl.max_horizontal(o, c)) | (lo > pl.min_horizontal(o, c))).height == 0
    # The whole day spans both sessions: the night opens it, the day session closes it.
    traded = fut.drop_nulls("NightSessionOpen")
    assert (traded["WholeDayOpen"] == traded["NightSessionOpen"]).all()
    assert (fut["WholeDayClose"] == fut["DaySessionClose"]).all()


def test_new_contract_has_no_night_session_on_its_first_day(fut: pl.DataFrame) -> None:
    # The June 2023 LTD is 2023-06-08; the next session lists the March 2024 contracts.
    first = fut.filter((pl.col("Date") == dt.date(2023, 6, 9)) & (pl.col("ContractMonth") == "2024-03"))
    assert first.height == 4 and first["NightSessionOpen"].null_count() == 4
    assert (first["WholeDayOpen"] == first["DaySessionOpen"]).all()
    before = fut.filter((pl.col("Date") == dt.date(2023, 6, 8)) & (pl.col("ContractMonth") == "2024-03"))
    assert before.height == 0


def test_central_contract_rolls_before_expiry_and_volume_follows(fut: pl.DataFrame) -> None:
    topixf = fut.filter(pl.col("DerivativesProductCategory") == "TOPIXF")
    central = topixf.filter(pl.col("CentralContractMonthFlag") == "1").sort("Date")
    # Central is the most active contract every day.
    busiest = topixf.sort("Volume", descending=True).group_by("Date").first().select("Date", "Code")
    assert_frame_equal(central.select("Date", "Code").sort("Date"), busiest.sort("Date"))
    # The June 2023 contract (LTD 2023-06-08) stops being central a few sessions before its LTD.
    june = central.filter(pl.col("ContractMonth") == "2023-06")["Date"]
    last_central = june.max()
    sessions_left = len(cal.business_days(last_central, dt.date(2023, 6, 8))) - 1
    assert 3 <= sessions_left <= 6
    # Open interest rolls: the expiring month's OI shrinks into its LTD, the next month's builds up.
    def oi(month: str, day: dt.date) -> float:
        return topixf.filter((pl.col("ContractMonth") == month) & (pl.col("Date") == day))["OpenInterest"].item()
    assert oi("2023-06", dt.date(2023, 6, 8)) < 0.4 * oi("2023-06", dt.date(2023, 5, 15))
    assert oi("2023-09", dt.date(2023, 6, 8)) > 2.0 * oi("2023-09", dt.date(2023, 5, 15))
    assert oi("2023-12", dt.date(2023, 6, 9)) < 0.2 * oi("2023-09", dt.date(2023, 6, 9))


def test_futures_follow_index_with_carry_and_converge_at_sq(market: SimMarket, fut: pl.DataFrame) -> None:
    ix = market.derivative_indices
    days = market.days.astype("datetime64[D]").astype(object)
    for p in sd.PRODUCTS:
        spot = pl.DataFrame({"Date": list(days), "S": ix[p.underlying]["close"], "SO": ix[p.underlying]["open"]})
        rows = fut.filter(pl.col("DerivativesProductCategory") == p.category).join(spot, on="Date")
        tau = (rows["SpecialQuotationDay"] - rows["Date"]).dt.total_days().to_numpy() / 365.0
        carry = np.exp(sd.futures_carry(p, rows["Date"].to_numpy().astype("datetime64[D]")) * tau)
        fair = rows["S"].to_numpy() * carry
        err = rows["DaySessionClose"].to_numpy() / fair - 1
        assert np.abs(err).max() < 0.006 and np.abs(err).mean() < 0.0015, p.category
        # Discount to spot grows with time to SQ (negative carry), vanishes on the last trading day.
        on_ltd = rows.filter(pl.col("Date") == pl.col("LastTradingDay"))
        assert on_ltd.height > 0
        assert ((on_ltd["DaySessionClose"] / on_ltd["S"] - 1).abs() < 0.002).all(), p.category
        # The night session leads the next cash open.
        lead = (rows["NightSessionClose"] / (rows["SO"] * carry) - 1).drop_nulls().abs()
        assert lead.max() < 0.006, p.category


def _basis_by_days_to_sq(market: SimMarket, fut: pl.DataFrame, p: sd.FuturesProduct) -> pl.DataFrame:
    ix = market.derivative_indices
    spot = pl.DataFrame({"Date": list(market.days.astype("datetime64[D]").astype(object)),
                         "S": ix[p.underlying]["close"]})
    return fut.filter(pl.col("DerivativesProductCategory") == p.category).join(spot, on="Date").with_columns(
        (pl.col("SettlementPrice") / pl.col("S") - 1).alias("basis"),
        (pl.col("SpecialQuotationDay") - pl.col("Date")).dt.total_days().alias("to_sq"))


@pytest.mark.parametrize("product", sd.PRODUCTS, ids=lambda p: p.category)
def test_basis_converges_to_zero_at_expiry(market: SimMarket, fut: pl.DataFrame, product: sd.FuturesProduct) -> None:
    rows = _basis_by_days_to_sq(market, fut, product)
    near = rows.filter(pl.col("to_sq") <= 7)["basis"].abs().mean()  # the last five sessions before SQ
    far = rows.filter(pl.col("to_sq").is_between(55, 65))["basis"].abs().mean()
    assert near < 0.0006 and far > 5 * near, (near, far)
    # The mispricing around the carry is persistent (AR), not white noise.
    resid = rows.filter(pl.col("to_sq") > 30).sort("ContractMonth", "Date")
    carry = sd.futures_carry(product, resid["Date"].to_numpy().astype("datetime64[D]"))
    m = resid["basis"].to_numpy() - carry * resid["to_sq"].to_numpy() / 365.0
    assert np.corrcoef(m[1:], m[:-1])[0, 1] > 0.5  # 0.72-0.82 here; white noise would give about 0


def test_central_price_gaps_at_each_roll_by_the_calendar_spread(fut: pl.DataFrame) -> None:
    for p in sd.PRODUCTS:
        rows = fut.filter(pl.col("DerivativesProductCategory") == p.category)
        central = rows.filter(pl.col("CentralContractMonthFlag") == "1").sort("Date").with_columns(
            pl.col("ContractMonth").shift(1).alias("old"))
        rolls = central.filter(pl.col("old").is_not_null() & (pl.col("old") != pl.col("ContractMonth")))
        gaps = rolls.join(rows.select("Date", pl.col("ContractMonth").alias("old"), pl.col("SettlementPrice").alias("px_old")),
                          on=["Date", "old"])
        assert gaps.height == rolls.height == 4  # the four quarterly rolls of 2023
        gap = (gaps["SettlementPrice"] / gaps["px_old"] - 1).to_numpy()
        # A quarter of negative carry, plus the mispricing's share: the next month trades at a discount.
        expected = sd.futures_carry(p, np.array(["2023-06-01"], dtype="datetime64[D]"))[0] * 91 / 365
        assert (gap < 0).all() and abs(gap.mean() - expected) < 0.002, (p.category, gap, expected)


def test_open_interest_builds_over_the_quarter_and_collapses_after_expiry(fut: pl.DataFrame) -> None:
    for p in sd.PRODUCTS:
        rows = fut.filter(pl.col("DerivativesProductCategory") == p.category)
        total = rows.group_by("Date").agg(pl.col("OpenInterest").sum()).sort("Date").with_row_index("i")
        ltd = total.join(rows.select(pl.col("LastTradingDay").alias("Date")).unique(), on="Date")["i"].to_numpy()
        ltd = ltd[(ltd >= 10) & (ltd + 1 < total.height)]
        oi = total["OpenInterest"].to_numpy()
        after, before = oi[ltd + 1], oi[ltd - 10]
        assert len(ltd) == 4 and (after < 0.85 * before).all(), (p.category, after / before)
        # From just after one expiry to ten sessions before the next, the product's OI grows.
        assert (oi[ltd[1:] - 10] > 1.15 * oi[ltd[:-1] + 1]).all(), p.category


def test_underlying_indices_members_and_levels(market: SimMarket) -> None:
    members = sd.index_members(market)
    counts = members["nk225"].sum(1)
    assert (counts > 0).all() and (counts <= 225).all() and (members["jpx400"].sum(1) <= 400).all()
    assert (members["nk225"] <= members["jpx400"]).all()  # the most liquid names lead both
    assert (members["jpx400"] <= sd._eligible(market)).all()
    ix = market.derivative_indices
    for name in ("topix", "nk225", "jpx400", "reit"):
        d = ix[name]
        assert (d["high"] >= np.maximum(d["open"], d["close"]) - 0.01).all()
        assert (d["low"] <= np.minimum(d["open"], d["close"]) + 0.01).all()
        assert np.allclose(d["prev"][1:], d["close"][:-1])
    # The REIT index has its own path: far from perfectly correlated with TOPIX.
    r_t = np.diff(np.log(ix["topix"]["close"]))
    r_r = np.diff(np.log(ix["reit"]["close"]))
    assert 0.1 < np.corrcoef(r_t, r_r)[0, 1] < 0.9


def test_black76_hand_values_and_parity() -> None:
    # F=100, K=100, tau=1, r=0, vol=0.2: ATM value = F (2 N(0.1) - 1) = 7.9656...
    v = sd.black76(np.array([100.0]), np.array([100.0]), np.array([1.0]), np.array([0.0]), np.array([0.2]),
                   np.array([True]))
    assert v[0] == pytest.approx(7.965567455405804, rel=1e-12)
    f, k, tau, r, vol = np.array([105.0]), np.array([100.0]), np.array([0.5]), np.array([0.01]), np.array([0.3])
    c = sd.black76(f, k, tau, r, vol, np.array([True]))
    p = sd.black76(f, k, tau, r, vol, np.array([False]))
    assert c[0] - p[0] == pytest.approx(np.exp(-0.005) * 5.0, rel=1e-12)
    assert sd.option_tick(np.array([100.0, 100.5, 1000.0, 1005.0])).tolist() == [1.0, 5.0, 5.0, 10.0]


def test_options_schema_strikes_and_contracts(opt: pl.DataFrame) -> None:
    spec = ENDPOINTS["index_option"]
    assert opt.schema == spec.schema
    assert opt["Date"].unique().sort().to_list() == cal.business_days(START, END)
    assert opt.select(pl.struct("Date", "Code").is_unique().all()).item()
    per_day = opt.group_by("Date").agg(pl.col("ContractMonth").n_unique().alias("months"))
    assert per_day["months"].unique().to_list() == [3]
    assert (opt["StrikePrice"] % 125 == 0).all()
    # 250-yen strikes only beyond the fine band: every 125-odd strike lies within 6 % of the running range.
    odd = opt.filter(pl.col("StrikePrice") % 250 != 0)
    assert ((odd["StrikePrice"] / odd["UnderlyingPrice"] - 1).abs() < 0.25).all()
    # Each listed strike has a put and a call.
    pairs = opt.group_by("Date", "ContractMonth", "StrikePrice").agg(pl.col("PutCallDivision").sort().str.join(""))
    assert pairs["PutCallDivision"].unique().to_list() == ["12"]
    # Contract dates: monthly SQ on the second Friday; LTD the business day before.
    months = opt.select("ContractMonth", "LastTradingDay", "SpecialQuotationDay").unique()
    for cm, ltd, sq in months.iter_rows():
        y, m = int(cm[:4]), int(cm[5:])
        assert sq == _d(sd.sq_dates(_mi(y, m))[0]) and ltd == cal.previous_business_day(sq)
    assert (opt["LastTradingDay"] >= opt["Date"]).all()
    row = opt.row(0, named=True)
    y, m = int(row["ContractMonth"][:4]), int(row["ContractMonth"][5:])
    assert row["Code"] == f"1{'4' if row['PutCallDivision'] == '2' else '3'}{(y + 5) % 10}{m:02d}" \
        f"{int(row['StrikePrice'] // 125) % 10000:04d}"


def test_option_prices_parity_grid_and_iv(opt: pl.DataFrame) -> None:
    assert (opt["ImpliedVolatility"] > 0).all() and (opt["BaseVolatility"] > 0).all()
    settle = opt["SettlementPrice"].to_numpy()
    tick = sd.option_tick(settle)
    assert (settle >= 1).all() and np.allclose(np.round(settle / tick) * tick, settle)
    calls = opt.filter(pl.col("PutCallDivision") == "2")
    puts = opt.filter(pl.col("PutCallDivision") == "1")
    both = calls.join(puts, on=["Date", "ContractMonth", "StrikePrice"], suffix="_p")
    tau = (both["SpecialQuotationDay"] - both["Date"]).dt.total_days().to_numpy() / 365.0
    rate = both["InterestRate"].to_numpy() / 100
    fwd = both["UnderlyingPrice"].to_numpy() * np.exp(sd.OPTION_CARRY * tau)
    parity = np.exp(-rate * tau) * (fwd - both["StrikePrice"].to_numpy())
    diff = both["SettlementPrice"].to_numpy() - both["SettlementPrice_p"].to_numpy()
    # Half a tick each (the tick above a boundary price included), plus the 1-yen floor of far wings.
    slack = sum(sd.option_tick(both[c].to_numpy() + 10) / 2 for c in ("SettlementPrice", "SettlementPrice_p")) + 1
    assert (np.abs(diff - parity) <= slack + 1e-9).all()
    # Session prices of traded series sit on the grid and inside their high/low.
    traded = opt.filter(pl.col("Volume") > 0)
    assert traded.height > 0.2 * opt.height
    for prefix in ("WholeDay", "DaySession"):
        o, h, lo, c = (pl.col(f"{prefix}{x}") for x in ("Open", "High", "Low", "Close"))
        assert traded.filter((h < pl.max_horizontal(o, c)) | (lo > pl.min_horizontal(o, c))).height == 0
    untraded = opt.filter(pl.col("Volume") == 0)
    assert (untraded["WholeDayClose"] == 0).all()


def test_volume_and_open_interest_concentrate_near_the_money(opt: pl.DataFrame) -> None:
    near = opt.filter(pl.col("ContractMonth") == pl.col("ContractMonth").min().over("Date")).with_columns(
        (pl.col("StrikePrice") / pl.col("UnderlyingPrice")).log().abs().alias("m"))
    atm = near.filter(pl.col("m") < 0.02)
    wing = near.filter(pl.col("m") > 0.08)
    assert atm["Volume"].mean() > 5 * wing["Volume"].mean()
    assert atm["OpenInterest"].mean() > 3 * wing["OpenInterest"].mean()


def test_iv_rises_with_market_volatility_and_has_put_skew(market: SimMarket, opt: pl.DataFrame) -> None:
    h = sd.market_variance(market.derivative_indices["topix"]["close"])
    state = pl.DataFrame({"Date": list(market.days.astype("datetime64[D]").astype(object)), "h": h})
    atm = (opt.filter(pl.col("ContractMonth") == pl.col("ContractMonth").min().over("Date"))
           .group_by("Date").agg(pl.col("BaseVolatility").first()).join(state, on="Date"))
    assert np.corrcoef(atm["BaseVolatility"], np.sqrt(atm["h"]))[0, 1] > 0.8
    day = opt.filter(pl.col("Date") == dt.date(2023, 9, 1))
    front = day.filter(pl.col("ContractMonth") == day["ContractMonth"].min())
    spot = front["UnderlyingPrice"][0]
    low_k = front.filter(pl.col("StrikePrice") < 0.95 * spot)["ImpliedVolatility"].mean()
    high_k = front.filter(pl.col("StrikePrice") > 1.05 * spot)["ImpliedVolatility"].mean()
    assert low_k > high_k
    # Implied volatility formula: smile(ATM) == ATM.
    assert sd.smile(np.array([0.2]), np.array([100.0]), np.array([100.0]), np.array([0.1]))[0] == pytest.approx(0.2)


def test_deterministic_and_prefix_stable(market: SimMarket) -> None:
    again = SimMarket(seed=5, n_stocks=120, start=START, end=END)
    assert_frame_equal(again.futures(), market.futures())
    assert_frame_equal(again.index_option(dt.date(2023, 3, 1), dt.date(2023, 3, 31)),
                       market.index_option(dt.date(2023, 3, 1), dt.date(2023, 3, 31)))
    short = SimMarket(seed=5, n_stocks=120, start=START, end=SHORT_END)
    assert_frame_equal(market.futures(end=SHORT_END), short.futures())
    assert_frame_equal(market.index_option(end=SHORT_END), short.index_option())
    other = SimMarket(seed=6, n_stocks=120, start=START, end=SHORT_END)
    assert not other.futures()["SettlementPrice"].equals(short.futures()["SettlementPrice"])
