"""The simulated fins/statements (fins/summary) rows of a market (`base.MarketState`), v1 names, typed.

Quarterly summaries follow the schedule of `signal.build_statement_schedule` (disclosure dates and times,
the earnings surprises and the forecast revisions between statements). The figures load on the latent
quality of the price model and on per-quarter draws from the market's `statements` stream; the fields
beyond the core P&L, balance sheet and forecasts draw from streams of their own (`_summary_rng`), so that
no draw of another stream changes. Every documented field of gogoku.jquants.endpoints.STATEMENTS is a
column.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from gogoku.jquants.endpoints import STATEMENTS
from gogoku.sim.base import SURPRISE_MARGIN, MarketState, date_series, month_end


def build_statements(m: MarketState) -> pl.DataFrame:
    """Quarterly summaries (1Q, 2Q, 3Q, FY) per listed stock, disclosed 33-50 days after each period end
    during the session (11:30, 13:00), at the close (15:00, 15:30 from 2024-11-05) or in the evening,
    and forecast revisions (TypeOfDocument EarnForecastRevision, forecasts only) between them.

    Sales and profits are cumulative from the fiscal-year start as in fins/summary; growth and margins
    load on the latent quality, so statements carry lagged, noisy information about it. IFRS filers
    leave OrdinaryProfit empty, as the real API does.
    """
    u, p, n = m.universe, m.paths, m.n_stocks
    # Month grid from 15 months before the start through the end; draws are month-major. A stock's
    # quarter ends are the months congruent to its fiscal-year-end month (mod 3) (see
    # `signal.build_statement_schedule`).
    sch = m.schedule
    n_months = m.end.year * 12 + m.end.month - 1 - sch.month0 + 1
    z = m.rng("statements").standard_normal((n_months, n, 7))
    cols = np.arange(n)[None, :]
    k, qtype, period_end = sch.k, sch.qtype, sch.period_end
    j = np.arange(k.shape[0])[:, None]
    pe_mi = sch.month0 + k
    is_fy = qtype == 4
    d = z[k, cols]

    # State at each period end: the last session on or before it (the start state before the span).
    t_idx = np.searchsorted(m.days, period_end, side="right") - 1
    t_c = np.clip(t_idx, 0, len(m.days) - 1)
    quality = np.where(t_idx >= 0, p.quality[t_c, cols], u.quality0[None, :])
    shares = np.where(t_idx >= 0, m.shares[t_c, cols], u.shares0[None, :])

    growth = 0.03 + 0.05 * quality + 0.04 * d[..., 0]
    q_sales = np.exp(np.log(u.sales0 / 4)[None, :] + np.cumsum(growth / 4, axis=0) + 0.04 * d[..., 1])
    # The quarter's earnings surprise shifts its operating margin (and so the run-rate guidance).
    q_op = q_sales * (u.margin0[None, :] + 0.03 * quality + 0.015 * d[..., 2] + SURPRISE_MARGIN * sch.surprise)
    # Year-to-date sums: a quarter of type n covers quarters j-n+1..j of its fiscal year; the first,
    # partial fiscal year on the grid is not disclosed.
    fy_first, complete = sch.fy_first, sch.complete
    cs_sales = np.vstack([np.zeros((1, n)), np.cumsum(q_sales, axis=0)])
    cs_op = np.vstack([np.zeros((1, n)), np.cumsum(q_op, axis=0)])
    sales = cs_sales[j + 1, cols] - cs_sales[fy_first, cols]
    op = cs_op[j + 1, cols] - cs_op[fy_first, cols]
    odp = op * (1.03 + 0.02 * d[..., 3])
    profit = odp * 0.68 * (1 + 0.05 * d[..., 4])
    avg_shares = shares * (1 - u.treasury[None, :])
    total_assets = 4 * q_sales / u.asset_turnover[None, :]
    equity = total_assets * u.equity_ratio[None, :] * (1 + 0.02 * d[..., 5])
    # Guidance: quarters forecast the current year from the run rate; FY results guide the next year.
    forecast = np.where(is_fy, np.nan, sales * (4.0 / qtype) * (1 + 0.03 * d[..., 6]))
    next_forecast = np.where(is_fy, sales * (1.03 + 0.05 * quality + 0.03 * d[..., 6]), np.nan)

    disclosed, disc_time = sch.disclosed, sch.time
    keep = complete & (disclosed >= np.datetime64(m.start)) & (disclosed <= np.datetime64(m.end))
    keep &= (disclosed >= m.life.ipo[None, :]) & (disclosed < m.life.delist[None, :])
    jj, ii = np.nonzero(keep)
    pick = lambda a: a[jj, ii]  # noqa: E731
    fy_row, ifrs, qt, pe = pick(is_fy), u.ifrs[ii], pick(qtype), pick(pe_mi)
    fy_end = month_end(pe + (4 - qt) * 3)
    fy_start = month_end(pe - 3 * qt) + np.timedelta64(1, "D")
    nat = np.datetime64("NaT")
    period = np.where(fy_row, "FY", np.char.add(qt.astype(str), "Q"))
    disc = pick(disclosed)
    yen = lambda a: np.round(a, -6)  # noqa: E731  amounts in yen, reported to the million
    s, o, pr, sh, avg = pick(sales), pick(op), pick(profit), pick(shares), pick(avg_shares)
    f_sales, nx_sales = pick(forecast), pick(next_forecast)
    op_margin, profit_margin = o / s, pr / s
    no_odp = lambda a: np.where(ifrs, np.nan, a)  # noqa: E731
    frame = pl.DataFrame({
        "DisclosedDate": date_series(disc, "DisclosedDate"),
        "DisclosedTime": pick(disc_time),
        "LocalCode": u.codes[ii],
        "DisclosureNumber": np.char.add(np.char.replace(np.datetime_as_string(disc), "-", ""), u.codes[ii]),
        "TypeOfDocument": np.char.add(np.char.add(period, "FinancialStatements_Consolidated_"),
                                      np.where(ifrs, "IFRS", "JP")),
        "TypeOfCurrentPeriod": period,
        "CurrentPeriodStartDate": date_series(fy_start, "CurrentPeriodStartDate"),
        "CurrentPeriodEndDate": date_series(pick(period_end), "CurrentPeriodEndDate"),
        "CurrentFiscalYearStartDate": date_series(fy_start, "CurrentFiscalYearStartDate"),
        "CurrentFiscalYearEndDate": date_series(fy_end, "CurrentFiscalYearEndDate"),
        "NextFiscalYearStartDate": date_series(np.where(fy_row, fy_end + np.timedelta64(1, "D"), nat),
                                               "NextFiscalYearStartDate"),
        "NextFiscalYearEndDate": date_series(np.where(fy_row, month_end(pe + 12), nat), "NextFiscalYearEndDate"),
        "NetSales": yen(s),
        "OperatingProfit": yen(o),
        "OrdinaryProfit": no_odp(yen(pick(odp))),
        "Profit": yen(pr),
        "EarningsPerShare": np.round(pr / avg, 2),
        "TotalAssets": yen(pick(total_assets)),
        "Equity": yen(pick(equity)),
        "EquityToAssetRatio": np.round(pick(equity) / pick(total_assets), 3),
        "BookValuePerShare": np.round(pick(equity) / avg, 2),
        "ForecastNetSales": yen(f_sales),
        "ForecastOperatingProfit": yen(f_sales * op_margin),
        "ForecastOrdinaryProfit": no_odp(yen(f_sales * op_margin * 1.03)),
        "ForecastProfit": yen(f_sales * profit_margin),
        "ForecastEarningsPerShare": np.round(f_sales * profit_margin / avg, 2),
        "NextYearForecastNetSales": yen(nx_sales),
        "NextYearForecastOperatingProfit": yen(nx_sales * op_margin),
        "NextYearForecastOrdinaryProfit": no_odp(yen(nx_sales * op_margin * 1.03)),
        "NextYearForecastProfit": yen(nx_sales * profit_margin),
        "NextYearForecastEarningsPerShare": np.round(nx_sales * profit_margin / avg, 2),
        "NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock": sh,
        "NumberOfTreasuryStockAtTheEndOfFiscalYear": np.round(sh * u.treasury[ii]),
        "AverageNumberOfShares": np.round(avg),
    }, nan_to_null=True)
    grids = {"qtype": qtype, "month": k, "profit": profit, "avg_shares": avg_shares, "forecast": forecast,
             "next_forecast": next_forecast}
    frame = frame.hstack(pl.DataFrame(_summary_extras(m, n_months, grids, jj, ii, frame), nan_to_null=True))
    # Forecast revisions between statements: the guidance in force (this year's, or the next year's after
    # an FY statement) moves with the revision's surprise; actuals stay empty.
    rev_keep = sch.rev & (sch.rev_disclosed >= np.datetime64(m.start)) & (sch.rev_disclosed <= np.datetime64(m.end))
    rev_keep &= (sch.rev_disclosed >= m.life.ipo[None, :]) & (sch.rev_disclosed < m.life.delist[None, :])
    rj, ri = np.nonzero(rev_keep)
    at = lambda a: a[rj, ri]  # noqa: E731
    r_fy, r_pe, r_qt = at(is_fy), at(pe_mi), at(qtype)
    r_fy_end = np.where(r_fy, month_end(r_pe + 12), month_end(r_pe + (4 - r_qt) * 3))
    r_fy_start = np.where(r_fy, month_end(r_pe), month_end(r_pe - 3 * r_qt)) + np.timedelta64(1, "D")
    guide = np.where(r_fy, at(next_forecast), at(forecast))
    shock = at(sch.rev_surprise)
    r_sales = guide * (1 + 0.03 * shock)
    r_op = guide * at(op) / at(sales) * (1 + 0.10 * shock)
    r_profit = guide * at(profit) / at(sales) * (1 + 0.10 * shock)
    r_disc = at(sch.rev_disclosed)
    r_ifrs = u.ifrs[ri]
    revisions = pl.DataFrame({
        "DisclosedDate": date_series(r_disc, "DisclosedDate"),
        "DisclosedTime": at(sch.rev_time),
        "LocalCode": u.codes[ri],
        "DisclosureNumber": np.char.add(np.char.replace(np.datetime_as_string(r_disc), "-", ""), u.codes[ri]),
        "TypeOfDocument": np.full(len(ri), "EarnForecastRevision"),
        "TypeOfCurrentPeriod": np.full(len(ri), "FY"),
        "CurrentPeriodStartDate": date_series(r_fy_start, "CurrentPeriodStartDate"),
        "CurrentPeriodEndDate": date_series(r_fy_end, "CurrentPeriodEndDate"),
        "CurrentFiscalYearStartDate": date_series(r_fy_start, "CurrentFiscalYearStartDate"),
        "CurrentFiscalYearEndDate": date_series(r_fy_end, "CurrentFiscalYearEndDate"),
        "ForecastNetSales": yen(r_sales),
        "ForecastOperatingProfit": yen(r_op),
        "ForecastOrdinaryProfit": np.where(r_ifrs, np.nan, yen(r_op * 1.03)),
        "ForecastProfit": yen(r_profit),
        "ForecastEarningsPerShare": np.round(r_profit / at(avg_shares), 2),
    }, nan_to_null=True)
    frame = pl.concat([frame, revisions], how="diagonal_relaxed")

    def column(name: str, dtype: type[pl.DataType]) -> pl.Expr:
        """Every documented field, typed; one a row lacks is "" on the wire, so a null number or date and
        a "" string in typed frames (as the client reads the wire)."""
        col = (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype)
        return (col.fill_null("") if dtype == pl.Utf8 else col).alias(name)

    frame = frame.select([column(c, t) for c, t in STATEMENTS.schema.items()])
    return frame.sort("DisclosedDate", "DisclosedTime", "LocalCode")


_SUMMARY_KEY = 0x53554D  # spawn-key prefix of the summary extras' streams: apart from every other stream
# From this disclosure date the summaries report SignificantChangesInTheScopeOfConsolidation instead of
# MaterialChangesInSubsidiaries (the quarterly-disclosure reform).
SCOPE_FLAG_FROM = np.datetime64("2024-07-22")


def _summary_rng(m: MarketState, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(m.seed, spawn_key=(_SUMMARY_KEY, stream)))


def _summary_extras(m: MarketState, n_months: int, grids: dict[str, np.ndarray], jj: np.ndarray, ii: np.ndarray,
                    core: pl.DataFrame) -> dict[str, np.ndarray]:
    """The fins/summary fields beyond the core P&L, balance sheet and forecasts, for the statements at
    grid cells (jj, ii) whose core columns are `core` (v1 names; NaN = empty).

    Derived from the core figures, with per-stock traits and per-month flag draws from streams of their
    own (`_summary_rng`: no draw of another stream changes): diluted EPS a little below EPS for about
    45% of the issuers; cash flows at 2Q and FY; dividends as `tables.dividend` pays them (interim
    from the half-year EPS, final from the full year's) with forecasts from the forecast EPS; first-half
    forecasts at 1Q (this year) and FY (next year); non-consolidated results and owners' equity and ROE
    at FY; accounting-change flags, mostly "false".
    """
    u = m.universe
    traits = _summary_rng(m, 0).random((m.n_stocks, 10))[ii]
    draws = _summary_rng(m, 1).random((n_months, m.n_stocks, 5))[grids["month"][jj, ii], ii]
    qt = grids["qtype"][jj, ii]
    fy, q1, cash_flow = qt == 4, qt == 1, (qt == 2) | (qt == 4)
    col = lambda name: core[name].fill_null(np.nan).to_numpy().astype(float)  # noqa: E731
    sales, op, profit, eps = col("NetSales"), col("OperatingProfit"), col("Profit"), col("EarningsPerShare")
    assets, equity, avg = col("TotalAssets"), col("Equity"), col("AverageNumberOfShares")
    outstanding = col("NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock") - col(
        "NumberOfTreasuryStockAtTheEndOfFiscalYear")
    feps, nx_eps = col("ForecastEarningsPerShare"), col("NextYearForecastEarningsPerShare")
    ifrs = u.ifrs[ii]
    nan = np.full(len(ii), np.nan)
    yen = lambda a: np.round(a, -6)  # noqa: E731  amounts in yen, reported to the million
    dps = lambda e: np.maximum(np.round(0.3 * e / 2 * 2) / 2, 0)  # noqa: E731  as `tables.dividend` pays

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.round(num / den, 3), np.nan)

    # The interim dividend is paid on the half-year EPS of the same fiscal year (its 2Q cell).
    eps_grid = np.round(grids["profit"] / grids["avg_shares"], 2)
    interim = np.where(qt >= 2, dps(eps_grid[np.where(qt >= 2, jj - (qt - 2), jj), ii]), nan)
    final = np.where(fy, dps(eps), nan)
    annual = interim + final
    f_div_2q = np.where(q1, dps(feps / 2), nan)
    f_div_fy = np.where(qt == 2, interim, dps(feps))  # at 2Q the final is forecast at the interim's level
    f_div_ann = np.where(q1, f_div_2q, interim) + f_div_fy
    nx_div_2q, nx_div_fy = dps(nx_eps / 2), dps(nx_eps)
    cfo = np.where(cash_flow, yen(op * (1.05 + 0.3 * traits[:, 0])), nan)
    # First-half forecasts: this year's at 1Q, next year's with the FY results, at the margins in force.
    half = 0.48 + 0.04 * traits[:, 1]
    op_margin, np_margin = op / sales, profit / sales
    h_sales = np.where(q1, grids["forecast"][jj, ii], grids["next_forecast"][jj, ii]) * half
    h_sales = np.where(q1 | fy, h_sales, nan)
    first_half = {
        "NetSales2ndQuarter": yen(h_sales), "OperatingProfit2ndQuarter": yen(h_sales * op_margin),
        "OrdinaryProfit2ndQuarter": np.where(ifrs, np.nan, yen(h_sales * op_margin * 1.03)),
        "Profit2ndQuarter": yen(h_sales * np_margin),
        "EarningsPerShare2ndQuarter": np.round(h_sales * np_margin / avg, 2),
    }
    # Non-consolidated (parent-only, Japanese GAAP even for IFRS groups) results at FY.
    parent = np.where(fy, 0.35 + 0.45 * traits[:, 2], np.nan)
    nc_sales, nc_op, nc_np = yen(sales * parent), yen(op * parent * 0.9), yen(profit * parent * 0.95)
    nc_assets, nc_equity = yen(assets * (0.45 + 0.3 * parent)), yen(equity * (0.5 + 0.4 * parent))
    owners_equity = yen(equity * (0.95 + 0.04 * traits[:, 3]))
    nc_owners_equity = yen(nc_equity * 0.995)
    flag = lambda b: np.where(b, "true", "false")  # noqa: E731
    scope_form = core["DisclosedDate"].to_numpy().astype("datetime64[D]") >= SCOPE_FLAG_FROM
    return {
        "DilutedEarningsPerShare": np.where((traits[:, 4] < 0.45) & (eps > 0),
                                            np.round(eps * (1 - 0.002 - 0.01 * traits[:, 5]), 2), nan),
        "CashFlowsFromOperatingActivities": cfo,
        "CashFlowsFromInvestingActivities": yen(-np.abs(cfo) * (0.4 + 0.5 * traits[:, 6])),
        "CashFlowsFromFinancingActivities": yen(-np.abs(cfo) * (0.1 + 0.4 * traits[:, 7])),
        "CashAndEquivalents": np.where(cash_flow, yen(assets * (0.06 + 0.14 * traits[:, 8])), nan),
        "ResultDividendPerShare2ndQuarter": interim, "ResultDividendPerShareFiscalYearEnd": final,
        "ResultDividendPerShareAnnual": annual, "ResultTotalDividendPaidAnnual": yen(annual * outstanding),
        "ResultPayoutRatioAnnual": ratio(annual, eps),
        "ForecastDividendPerShare2ndQuarter": f_div_2q, "ForecastDividendPerShareFiscalYearEnd": f_div_fy,
        "ForecastDividendPerShareAnnual": f_div_ann, "ForecastPayoutRatioAnnual": ratio(f_div_ann, feps),
        "NextYearForecastDividendPerShare2ndQuarter": nx_div_2q,
        "NextYearForecastDividendPerShareFiscalYearEnd": nx_div_fy,
        "NextYearForecastDividendPerShareAnnual": nx_div_2q + nx_div_fy,
        "NextYearForecastPayoutRatioAnnual": ratio(nx_div_2q + nx_div_fy, nx_eps),
        **{f"Forecast{k}": np.where(q1, v, nan) for k, v in first_half.items()},
        **{f"NextYearForecast{k}": np.where(fy, v, nan) for k, v in first_half.items()},
        "MaterialChangesInSubsidiaries": np.where(scope_form, "", flag(draws[:, 0] < 0.02)),
        "SignificantChangesInTheScopeOfConsolidation": np.where(scope_form, flag(draws[:, 0] < 0.02), ""),
        "ChangesBasedOnRevisionsOfAccountingStandard": flag(draws[:, 1] < 0.03),
        "ChangesOtherThanOnesBasedOnRevisionsOfAccountingStandard": flag(draws[:, 2] < 0.02),
        "ChangesInAccountingEstimates": flag(draws[:, 3] < 0.02),
        "RetrospectiveRestatement": flag(draws[:, 4] < 0.01),
        "NonConsolidatedNetSales": nc_sales, "NonConsolidatedOperatingProfit": nc_op,
        "NonConsolidatedOrdinaryProfit": yen(nc_op * 1.08), "NonConsolidatedProfit": nc_np,
        "NonConsolidatedEarningsPerShare": np.round(nc_np / avg, 2), "NonConsolidatedTotalAssets": nc_assets,
        "NonConsolidatedEquity": nc_equity, "NonConsolidatedEquityToAssetRatio": ratio(nc_equity, nc_assets),
        "NonConsolidatedBookValuePerShare": np.round(nc_equity / avg, 2),
        "ShareholdersEquity": owners_equity, "NonConsolidatedShareholdersEquity": nc_owners_equity,
        "ReturnOnEquity": np.where(fy, ratio(profit, owners_equity), nan),
        "NonConsolidatedReturnOnEquity": ratio(nc_np, nc_owners_equity),
    }
