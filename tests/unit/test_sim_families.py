"""The simulator's market life cycle, data families, publication schedules and planted signal families."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku import calendar as cal
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.base import FAMILIES, REORG_DATE
from gogoku.sim.market import SimMarket
from gogoku.sim.signal import PEAD_NORM

START, END = dt.date(2021, 6, 1), dt.date(2025, 3, 31)
SHORT_END = dt.date(2023, 2, 15)
TABLES = ("trades_spec", "weekly_margin_interest", "daily_margin_interest", "short_selling", "short_selling_positions",
          "announcement", "indices", "prices_am", "breakdown", "dividend")


@pytest.fixture(scope="module")
def market() -> SimMarket:
    """Spans the 2022-04-04 market reorg, holiday trading from 2022-09-23 and the 2024-11-05 close change."""
    return SimMarket(seed=5, n_stocks=200, start=START, end=END)


@pytest.fixture(scope="module")
def short_market() -> SimMarket:
    return SimMarket(seed=5, n_stocks=200, start=START, end=SHORT_END)


def _session_index(market: SimMarket, dates: pl.Series) -> np.ndarray:
    return np.searchsorted(market.days, dates.to_numpy().astype("datetime64[D]"))


@pytest.mark.parametrize("source", TABLES)
def test_tables_are_typed_and_an_earlier_end_is_a_prefix(source: str, market: SimMarket,
                                                         short_market: SimMarket) -> None:
    spec = ENDPOINTS[source]
    frame = getattr(market, source)()
    assert frame.height > 0
    assert frame.schema == spec.schema
    assert frame.sort(list(spec.sort_by), maintain_order=True).equals(frame.sort(list(spec.sort_by)))
    short = getattr(short_market, source)()
    long = getattr(market, source)(end=SHORT_END)
    if source == "weekly_margin_interest":  # served once published: 2 business days after Date
        published = pl.Series([cal.add_business_days(d, 2) for d in long["Date"]])
        long = long.filter(published <= SHORT_END)
    if source == "indices":  # the market-segment indices are chained from their first simulated day
        long, short = (f.filter(~pl.col("Code").str.starts_with("05")) for f in (long, short))
    order = list(spec.sort_by)
    assert_frame_equal(long.sort(order, maintain_order=True), short.sort(order, maintain_order=True))


def test_same_seed_same_tables_and_the_order_of_requests_does_not_matter() -> None:
    a = SimMarket(seed=9, n_stocks=40, start=dt.date(2024, 1, 4), end=dt.date(2024, 6, 28))
    b = SimMarket(seed=9, n_stocks=40, start=dt.date(2024, 1, 4), end=dt.date(2024, 6, 28))
    for source in reversed(TABLES):
        b_frame = getattr(b, source)()
        assert_frame_equal(getattr(a, source)(), b_frame)
    c = SimMarket(seed=10, n_stocks=40, start=dt.date(2024, 1, 4), end=dt.date(2024, 6, 28))
    assert not c.trades_spec()["ForeignersBalance"].equals(a.trades_spec()["ForeignersBalance"])


def test_listings_delistings_and_segment_changes(market: SimMarket) -> None:
    quotes = market.daily_quotes()
    span = quotes.group_by("Code").agg(pl.col("Date").min().alias("first"), pl.col("Date").max().alias("last"),
                                       pl.len().alias("n"))
    ipo = span.filter(pl.col("first") > market.days[0].astype(object))
    gone = span.filter(pl.col("last") < market.days[-1].astype(object))
    assert ipo.height >= 3 and gone.height >= 2
    # Quoted on every session between listing and delisting, on none outside.
    sessions = pl.Series(market.days.tolist(), dtype=pl.Date)
    expected_n = [int(sessions.is_between(f, la).sum()) for f, la in zip(span["first"], span["last"], strict=True)]
    assert span["n"].to_list() == expected_n
    code, last = gone["Code"][0], gone["last"][0]
    assert market.listed_info(cal.next_business_day(last), code).height == 0
    assert market.listed_info(last, code).height == 1
    # Old sections before the reorg, new segments after; a few codes move segment.
    old = market.listed_info(dt.date(2022, 3, 1))
    new = market.listed_info(dt.date(2022, 6, 1))
    assert set(old["MarketCode"]) <= {"0101", "0102", "0104", "0106", "0107"}
    assert set(new["MarketCode"]) == {"0111", "0112", "0113"}
    later = market.listed_info(END)
    moved = new.join(later, on="Code").filter(pl.col("MarketCode") != pl.col("MarketCode_right"))
    assert moved.height >= 2
    assert set(moved["MarketCodeName_right"]) <= {"プライム", "スタンダード", "グロース"}
    assert later.filter(pl.col("MarketCode") == "0113")["ScaleCategory"].unique().to_list() == ["-"]


def test_holiday_divisions(market: SimMarket) -> None:
    cal_frame = market.trading_calendar(dt.date(2022, 1, 1), dt.date(2023, 1, 10))
    div = dict(zip(cal_frame["Date"], cal_frame["HolidayDivision"], strict=True))
    assert div[dt.date(2022, 1, 10)] == "0"  # a weekday holiday before holiday trading
    assert div[dt.date(2023, 1, 9)] == "3"  # Coming of Age Day with derivatives holiday trading
    assert div[dt.date(2023, 1, 2)] == "0" and div[dt.date(2023, 1, 7)] == "0"  # new year, a Saturday
    assert div[dt.date(2023, 1, 10)] == "1"


def test_statements_times_and_the_earnings_drift_start_at_the_effective_session(market: SimMarket) -> None:
    st = market.statements().filter(pl.col("TypeOfDocument") != "EarnForecastRevision")
    after_change = st.filter(pl.col("DisclosedDate") >= cal.CLOSE_CHANGE_DATE)
    before_change = st.filter(pl.col("DisclosedDate") < cal.CLOSE_CHANGE_DATE)
    assert "15:30:00" in set(after_change["DisclosedTime"]) and "15:00:00" in set(before_change["DisclosedTime"])
    # Effective sessions from the public table agree with the schedule that drives the signal.
    eff = cal.with_effective_date(st, "DisclosedDate", "DisclosedTime").collect()
    sch = market.schedule
    cols = np.searchsorted(market.universe.codes, st["LocalCode"].to_numpy())
    rows = np.array([np.flatnonzero(sch.disclosed[:, c] == d)[0] for c, d in
                     zip(cols, st["DisclosedDate"].to_numpy().astype("datetime64[D]"), strict=True)])
    np.testing.assert_array_equal(sch.effective[rows, cols], eff["EffectiveDate"].to_numpy().astype("datetime64[D]"))
    surprise = sch.surprise[rows, cols]
    t_eff = _session_index(market, eff["EffectiveDate"])
    inside = (t_eff >= 2) & (t_eff < len(market.days) - 1)
    pead = market.published["pead"]
    # The drift term equals the fresh surprise on the effective session and never uses it before.
    np.testing.assert_allclose(pead[t_eff[inside], cols[inside]], surprise[inside] / PEAD_NORM, rtol=1e-5)
    before = pead[t_eff[inside] - 1, cols[inside]]
    assert abs(np.corrcoef(before, surprise[inside])[0, 1]) < 0.1
    # The price reacts on the effective session, not on the session before: using an after-close
    # disclosure at its own date would be a leak worth a large, impossible IC.
    close = market.paths.close
    ret = np.vstack([np.full((1, market.n_stocks), np.nan), close[1:] / (close[:-1] * market.paths.factor[1:]) - 1])
    on_eff = ret[t_eff[inside], cols[inside]]
    day_before = ret[t_eff[inside] - 1, cols[inside]]
    assert np.corrcoef(on_eff, surprise[inside])[0, 1] > 0.3
    assert abs(np.corrcoef(day_before, surprise[inside])[0, 1]) < 0.1
    # Visible in the disclosed numbers: the quarter's operating margin moves with the surprise.
    margin = (st["OperatingProfit"] / st["NetSales"]).to_numpy()
    assert np.corrcoef(margin[st["TypeOfCurrentPeriod"].to_numpy() == "1Q"],
                       surprise[st["TypeOfCurrentPeriod"].to_numpy() == "1Q"])[0, 1] > 0.2


def test_earnings_calendar_lists_each_statement_on_its_date(market: SimMarket) -> None:
    ann = market.announcement()
    st = (market.statements().filter(pl.col("TypeOfDocument") != "EarnForecastRevision")
          .select("LocalCode", "DisclosedDate", "TypeOfCurrentPeriod"))
    joined = ann.join(st, left_on=["Code", "Date"], right_on=["LocalCode", "DisclosedDate"], how="full")
    assert joined.height == ann.height == st.height
    quarter = {"1Q": "第１四半期", "2Q": "第２四半期", "3Q": "第３四半期", "FY": "通期"}
    assert (joined["FiscalQuarter"] == joined["TypeOfCurrentPeriod"].replace_strict(quarter)).all()
    assert set(ann.filter(pl.col("Date") > dt.date(2022, 6, 1))["Section"]) <= {"プライム", "スタンダード", "グロース"}


def test_weekly_margin_is_as_of_friday_and_enters_after_publication(market: SimMarket) -> None:
    wm = market.weekly_margin_interest()
    assert (wm["Date"].dt.weekday() == 5).mean() > 0.9  # Fridays (the week's last session otherwise)
    assert wm["Date"].is_in(market.days.tolist()).all()
    assert (wm["LongMarginTradeVolume"] == wm["LongNegotiableMarginTradeVolume"]
            + wm["LongStandardizedMarginTradeVolume"]).all()
    assert set(wm["IssueType"]) == {"1", "2"}
    assert wm.filter(pl.col("IssueType") == "1")["ShortStandardizedMarginTradeVolume"].max() == 0
    # The margin term changes only on the session after each publication (2 business days after Date).
    term = market.published["margin"]
    changed = np.flatnonzero(np.abs(np.diff(term, axis=0)).sum(axis=1) > 0) + 1
    usable = {cal.next_business_day(cal.add_business_days(d, 2)) for d in wm["Date"].unique()}
    assert {market.days[t].astype(object) for t in changed} <= usable
    assert len(changed) >= 0.9 * len([d for d in usable if d <= END])
    # Visible: the published long/short balance ratio tracks the imbalance the term uses (with sign -).
    usable_t = np.searchsorted(market.days, np.array([cal.next_business_day(cal.add_business_days(d, 2))
                                                      for d in wm["Date"]], dtype="datetime64[D]"))
    ok = usable_t < len(market.days)
    cols = np.searchsorted(market.universe.codes, wm["Code"].to_numpy())
    log_ratio = np.log(wm["LongMarginTradeVolume"] / wm["ShortMarginTradeVolume"]).to_numpy()
    assert np.corrcoef(log_ratio[ok], term[usable_t[ok], cols[ok]])[0, 1] < -0.4


def test_daily_margin_spells_and_publish_reasons(market: SimMarket) -> None:
    dm = market.daily_margin_interest()
    expected = [cal.next_business_day(d) for d in dm["ApplicationDate"]]
    assert dm["PublishedDate"].to_list() == expected
    # On any day only a subset of the listed codes is on alert.
    listed = market.life.listed_at(market.days).sum(axis=1)
    per_day = dm.group_by("ApplicationDate").len()
    share = per_day["len"].to_numpy() / listed[_session_index(market, per_day["ApplicationDate"])]
    assert share.max() < 0.25 and 0.02 < share.mean() < 0.15
    flags = [c for c in dm.columns if c.startswith("PublishReason_")]
    assert len(flags) == 6 and all(set(dm[c]) <= {"0", "1"} for c in flags)
    assert (dm["PublishReason_DailyPublication"] == "1").all()
    assert (dm["PublishReason_Restricted"] == "1").any()
    # The first day of a spell has no previous day ("-" on the wire, null here); later days difference.
    by_code = dm.sort("Code", "ApplicationDate").with_columns(
        pl.col("LongMarginOutstanding").diff().over("Code").alias("diff"),
        pl.col("ApplicationDate").shift(1).over("Code").alias("prev"),
    )
    first = by_code.filter(pl.col("prev").is_null())
    assert first["DailyChangeLongMarginOutstanding"].null_count() == first.height
    cont = by_code.filter(pl.col("DailyChangeLongMarginOutstanding").is_not_null())
    assert cont.height > first.height
    assert (cont["DailyChangeLongMarginOutstanding"] == cont["diff"]).all()
    assert dm.schema["ShortMarginOutstandingListedShareRatio"] == pl.Float64


def test_trades_spec_weeks_sections_and_identities(market: SimMarket) -> None:
    ts = market.trades_spec()
    assert (ts["PublishedDate"].dt.weekday() == 4).mean() > 0.75  # Thursdays, later after holidays
    assert (ts["StartDate"].dt.weekday() == 1).mean() > 0.85 and (ts["EndDate"].dt.weekday() == 5).mean() > 0.85
    assert ts["PublishedDate"].to_list() == [cal.add_business_days(d, 4) for d in ts["EndDate"]]
    old = set(ts.filter(pl.col("EndDate") < REORG_DATE)["Section"])
    new = set(ts.filter(pl.col("EndDate") >= REORG_DATE)["Section"])
    assert old == {"TSE1st", "TSE2nd", "TSEMothers", "TSEJASDAQ", "TokyoNagoya"}
    assert new == {"TSEPrime", "TSEStandard", "TSEGrowth", "TokyoNagoya"}
    assert ts.group_by("PublishedDate", "Section").len()["len"].max() == 1
    investors = ("Individuals", "Foreigners", "SecuritiesCos", "InvestmentTrusts", "BusinessCos", "OtherCos",
                 "InsuranceCos", "CityBKsRegionalBKsEtc", "TrustBanks", "OtherFinancialInstitutions")
    for prefix in (*investors, "Proprietary", "Brokerage", "Total"):
        assert (ts[f"{prefix}Total"] == ts[f"{prefix}Sales"] + ts[f"{prefix}Purchases"]).all()
        assert (ts[f"{prefix}Balance"] == ts[f"{prefix}Purchases"] - ts[f"{prefix}Sales"]).all()
    assert (ts["BrokerageSales"] == sum(ts[f"{p}Sales"] for p in investors)).all()
    assert (ts["TotalPurchases"] == ts["ProprietaryPurchases"] + ts["BrokeragePurchases"]).all()
    # The foreigners' balance is the planted weekly flow of the section.
    prime = ts.filter(pl.col("Section").is_in(["TSE1st", "TSEPrime"]))
    weeks = np.searchsorted(market.weeks.record, prime["EndDate"].to_numpy().astype("datetime64[D]"))
    share = (prime["ForeignersBalance"] / prime["ForeignersTotal"]).to_numpy()
    assert np.corrcoef(share, market.weekly[1][weeks, 0])[0, 1] > 0.9


def test_flow_term_uses_only_published_weeks(market: SimMarket) -> None:
    flow = market.published["flow"]
    first_usable = cal.next_business_day(market.trades_spec()["PublishedDate"].min())
    t0 = int(np.searchsorted(market.days, np.datetime64(first_usable)))
    assert np.abs(flow[:t0]).max() == 0 and np.abs(flow[t0]).max() > 0
    changed = np.flatnonzero(np.abs(np.diff(flow, axis=0)).sum(axis=1) > 0) + 1
    usable = {cal.next_business_day(d) for d in market.trades_spec()["PublishedDate"]}
    segment_moves = {d.astype(object) for d in market.life.change}
    assert {market.days[t].astype(object) for t in changed} <= usable | segment_moves | {REORG_DATE}


def test_short_selling_and_positions(market: SimMarket) -> None:
    ss = market.short_selling()
    quotes = market.daily_quotes().join(market.listed_info(END).select("Code"), on="Code", how="left")
    assert ss.group_by("Date").len()["len"].max() <= 33
    total = ss.select(pl.sum_horizontal(pl.exclude("Date", "Sector33Code")).alias("t"), "Date").group_by("Date").agg(
        pl.col("t").sum()).sort("Date")
    turnover = quotes.group_by("Date").agg(pl.col("TurnoverValue").sum()).sort("Date")
    np.testing.assert_allclose(total["t"], turnover["TurnoverValue"], rtol=1e-6)
    short = ss["ShortSellingWithRestrictionsTurnoverValue"] + ss["ShortSellingWithoutRestrictionsTurnoverValue"]
    share = short / (short + ss["SellingExcludingShortSellingTurnoverValue"])
    assert 0.3 < share.mean() < 0.5
    pos = market.short_selling_positions()
    assert pos["DisclosedDate"].to_list() == [cal.add_business_days(d, 2) for d in pos["CalculatedDate"]]
    assert (pos["ShortPositionsToSharesOutstandingRatio"] >= 0.005).all()
    chained = pos.filter(pl.col("CalculationInPreviousReportingDate").is_not_null())
    assert chained.height > 0 and (chained["CalculationInPreviousReportingDate"] < chained["CalculatedDate"]).all()


def test_indices_morning_bars_breakdown_and_dividends(market: SimMarket) -> None:
    ix = market.indices()
    assert_frame_equal(ix.filter(pl.col("Code") == "0000").drop("Code"), market.topix())
    codes = set(ix["Code"])
    assert {"0028", "0029", "002B", "002D", "0040", "0060", "0500", "0501", "0502"} <= codes
    assert ix.filter(pl.col("Code") == "0500")["Date"].min() == REORG_DATE
    assert ix.filter((pl.col("High") < pl.max_horizontal("Open", "Close"))
                     | (pl.col("Low") > pl.min_horizontal("Open", "Close"))).height == 0
    q = market.daily_quotes()
    am = market.prices_am().join(q, on=["Code", "Date"])
    assert am.height == q.height
    assert (am["MorningOpen"] == am["Open"]).all()
    assert am.filter((pl.col("MorningHigh") > pl.col("High")) | (pl.col("MorningLow") < pl.col("Low"))
                     | (pl.col("MorningHigh") < pl.max_horizontal("MorningOpen", "MorningClose"))
                     | (pl.col("MorningLow") > pl.min_horizontal("MorningOpen", "MorningClose"))
                     | (pl.col("MorningVolume") > pl.col("Volume"))).height == 0
    bd = market.breakdown().join(q, on=["Code", "Date"])
    sells = bd["LongSellVolume"] + bd["ShortSellWithoutMarginVolume"] + bd["MarginSellNewVolume"] + bd[
        "MarginSellCloseVolume"]
    buys = bd["LongBuyVolume"] + bd["MarginBuyNewVolume"] + bd["MarginBuyCloseVolume"]
    assert (sells == bd["Volume"]).all() and (buys == bd["Volume"]).all()
    dv = market.dividend()
    assert dv["ExDate"].drop_nulls().is_in(market.days.tolist() + cal.business_days(END, END + dt.timedelta(days=400))).all()
    results = dv.filter(pl.col("ForecastResultCode") == "1")
    assert (results["ExDate"] < results["RecordDate"]).all() and (results["PayableDate"] > results["RecordDate"]).all()
    forecasts = dv.filter(pl.col("ForecastResultCode") == "2")
    assert 0 < forecasts["GrossDividendRate"].null_count() < forecasts.height  # "-" undecided -> null
    assert dv["ReferenceNumber"].n_unique() == dv.height


def test_truth_contributions_and_strengths(market: SimMarket) -> None:
    truth = market.truth()
    parts = truth.select(pl.sum_horizontal([pl.col(f"contrib_{f}_1d").cast(pl.Float64) for f in FAMILIES]))
    np.testing.assert_allclose(parts.to_series(), truth["exp_ret_1d"], rtol=1e-5, atol=1e-9)
    strengths = market.signal_strengths()
    assert strengths["family"].to_list() == [*FAMILIES, "total"]
    fam = strengths.filter(pl.col("family") != "total")
    assert abs(fam["variance_share"].sum() - 1) < 1e-9
    assert (fam["variance_share"] > 0.03).all()
    assert (fam["rank_ic_1d"] > 0).all()
    total_ic = strengths.filter(pl.col("family") == "total")["rank_ic_1d"][0]
    assert 0.03 <= total_ic <= 0.08 and total_ic > fam["rank_ic_1d"].max()


def test_lead_lag_follows_the_latent_peers(market: SimMarket) -> None:
    peers = market.peers()
    assert peers.height == 4 * market.n_stocks and (peers["Code"] != peers["PeerCode"]).all()
    listed = market.listed_info(dt.date(2023, 6, 1)).select("Code", "Sector33Code")
    same = peers.join(listed, on="Code").join(listed, left_on="PeerCode", right_on="Code", suffix="_peer")
    assert (same["Sector33Code"] == same["Sector33Code_peer"]).mean() > 0.6
    # The lead-lag term is the z-score of the peers' recent idiosyncratic returns: peers' mean return on t
    # lines up with it at t's close.
    q = market.daily_quotes().sort("Code", "Date").with_columns(
        (pl.col("AdjustmentClose") / pl.col("AdjustmentClose").shift(1).over("Code") - 1).alias("r"))
    peer_ret = (peers.join(q.select("Code", "Date", "r"), left_on="PeerCode", right_on="Code")
                .group_by("Code", "Date").agg(pl.col("r").mean().alias("peer_r")))
    joined = market.truth().join(peer_ret, on=["Code", "Date"]).drop_nulls("peer_r")
    assert joined.select(pl.corr("contrib_leadlag_1d", "peer_r", method="spearman")).item() > 0.2


def test_forecast_revisions_are_earnings_events_too(market: SimMarket) -> None:
    rev = market.statements().filter(pl.col("TypeOfDocument") == "EarnForecastRevision")
    eff = cal.with_effective_date(rev, "DisclosedDate", "DisclosedTime").collect()
    sch = market.schedule
    cols = np.searchsorted(market.universe.codes, rev["LocalCode"].to_numpy())
    rows = np.array([np.flatnonzero(sch.rev[:, c] & (sch.rev_disclosed[:, c] == d))[0] for c, d in
                     zip(cols, rev["DisclosedDate"].to_numpy().astype("datetime64[D]"), strict=True)])
    np.testing.assert_array_equal(sch.rev_effective[rows, cols], eff["EffectiveDate"].to_numpy().astype("datetime64[D]"))
    t_eff = _session_index(market, eff["EffectiveDate"])
    inside = (t_eff >= 1) & (t_eff < len(market.days))
    shock = sch.rev_surprise[rows, cols][inside]
    np.testing.assert_allclose(market.published["pead"][t_eff[inside], cols[inside]], shock / PEAD_NORM,
                               rtol=1e-5)
    # Visible: the revised profit forecast against the one in force before it.
    every = market.statements().sort("LocalCode", "DisclosedDate", "DisclosedTime").with_columns(
        pl.when(pl.col("TypeOfCurrentPeriod") == "FY").then(pl.col("NextYearForecastProfit"))
        .otherwise(pl.col("ForecastProfit")).alias("guide"))
    every = every.with_columns(
        pl.when(pl.col("TypeOfDocument") == "EarnForecastRevision").then(pl.col("ForecastProfit"))
        .otherwise(pl.col("guide")).alias("guide"))
    change = every.with_columns((pl.col("ForecastProfit") / pl.col("guide").shift(1).over("LocalCode")).alias("chg"))
    chg = change.filter(pl.col("TypeOfDocument") == "EarnForecastRevision").join(
        rev.with_columns(pl.Series("shock", sch.rev_surprise[rows, cols])).select("LocalCode", "DisclosureNumber",
                                                                                  "shock"),
        on=["LocalCode", "DisclosureNumber"]).drop_nulls("chg")
    assert chg.height > 50 and chg.select(pl.corr("chg", "shock")).item() > 0.8
    # One revision at most between two statements.
    kinds = every.select((pl.col("TypeOfDocument") == "EarnForecastRevision").alias("r"), "LocalCode")
    assert not kinds.select(pl.col("r") & pl.col("r").shift(1).over("LocalCode")).to_series().any()
