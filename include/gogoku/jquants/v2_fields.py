"""The response fields J-Quants documents for each v2 endpoint the simulator serves, with their JSON types.

Kept as data, apart from the endpoint table in `endpoints`, so that tests can hold the simulator and the
client to the documentation rather than to themselves.

Sources:
- the official client `J-Quants/jquants-api-client-python`, package jquants-api-client 2.8.0,
  `jquantsapi/constants.py`: EQ_MASTER_COLUMNS_V2, EQ_BARS_DAILY_COLUMNS_V2, PRICES_PRICES_AM_COLUMNS_V2,
  INDICES_COLUMNS_V2, INDICES_TOPIX_COLUMNS_V2, EQ_INVESTOR_TYPES_COLUMNS_V2,
  MKT_MARGIN_INTEREST_COLUMNS_V2, MKT_SHORT_RATIO_COLUMNS_V2, MKT_BREAKDOWN_COLUMNS_V2,
  MARKETS_TRADING_CALENDAR_COLUMNS_V2, FIN_SUMMARY_COLUMNS_V2, FINS_DIVIDEND_COLUMNS_V2,
  FINS_ANNOUNCEMENT_COLUMNS_V2, DERIVATIVES_FUTURES_COLUMNS_V2, DERIVATIVES_OPTIONS_COLUMNS_V2,
  SHORT_SELLING_POSITIONS_COLUMNS_V2, DAILY_MARGIN_INTEREST_COLUMNS_V2 (the package has no list for
  derivatives/bars/daily/options/225: its fields are those of the spec page drv-bars-daily-opt-225,
  the options list without ProdCat, UndSSO, the morning session and CCMFlag);
- the v2 spec pages jpx-jquants.com/{ja,en}/spec/<page> for the JSON types: dates and times travel as
  strings ("YYYY-MM-DD", "HH:MM:SS"), codes and flags as strings, prices and amounts as numbers,
  `PubReason` as an object of "0"/"1" strings; every fins/summary value is a string ("" when empty).

Number fields may be null where the API has no value (and the daily margin table sends "-" or "*"
sentinels); the simulator sends null.
"""

from __future__ import annotations

STRING, NUMBER, OBJECT = "string", "number", "object"


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _typed(*groups: tuple[str, str]) -> dict[str, str]:
    """(space-separated names, JSON type) groups -> {name: type}, in the documented order."""
    out: dict[str, str] = {}
    for names, kind in groups:
        for name in _names(names):
            if name in out:
                raise ValueError(f"field {name} listed twice")
            out[name] = kind
    return out


_BAR = "O H L C"
_SESSION_BARS = "MO MH ML MC EO EH EL EC AO AH AL AC"

# v2 path (under /v2/) -> {field: JSON type}, in the documented order.
V2_FIELDS: dict[str, dict[str, str]] = {
    "equities/master": _typed(
        ("Date Code CoName CoNameEn S17 S17Nm S33 S33Nm ScaleCat Mkt MktNm Mrgn MrgnNm ProdCat", STRING),
    ),
    "markets/calendar": _typed(("Date HolDiv", STRING)),
    "equities/bars/daily": _typed(
        ("Date Code", STRING), (_BAR, NUMBER), ("UL LL", STRING),
        ("Vo Va AdjFactor AdjO AdjH AdjL AdjC AdjVo", NUMBER),
        ("MO MH ML MC", NUMBER), ("MUL MLL", STRING), ("MVo MVa MAdjO MAdjH MAdjL MAdjC MAdjVo", NUMBER),
        ("AO AH AL AC", NUMBER), ("AUL ALL", STRING), ("AVo AVa AAdjO AAdjH AAdjL AAdjC AAdjVo", NUMBER),
    ),
    "equities/bars/daily/am": _typed(("Date Code", STRING), ("MO MH ML MC MVo MVa", NUMBER)),
    "indices/bars/daily/topix": _typed(("Date", STRING), (_BAR, NUMBER)),
    "indices/bars/daily": _typed(("Date Code", STRING), (_BAR, NUMBER)),
    "fins/summary": _typed((
        "DiscDate DiscTime Code DiscNo DocType CurPerType CurPerSt CurPerEn CurFYSt CurFYEn NxtFYSt NxtFYEn "
        "Sales OP OdP NP EPS DEPS TA Eq EqAR BPS CFO CFI CFF CashEq "
        "Div1Q Div2Q Div3Q DivFY DivAnn DivUnit DivTotalAnn PayoutRatioAnn "
        "FDiv1Q FDiv2Q FDiv3Q FDivFY FDivAnn FDivUnit FDivTotalAnn FPayoutRatioAnn "
        "NxFDiv1Q NxFDiv2Q NxFDiv3Q NxFDivFY NxFDivAnn NxFDivUnit NxFPayoutRatioAnn "
        "FSales2Q FOP2Q FOdP2Q FNP2Q FEPS2Q NxFSales2Q NxFOP2Q NxFOdP2Q NxFNp2Q NxFEPS2Q "
        "FSales FOP FOdP FNP FEPS NxFSales NxFOP NxFOdP NxFNp NxFEPS "
        "MatChgSub SigChgInC ChgByASRev ChgNoASRev ChgAcEst RetroRst ShOutFY TrShFY AvgSh "
        "NCSales NCOP NCOdP NCNP NCEPS NCTA NCEq NCEqAR NCBPS "
        "FNCSales2Q FNCOP2Q FNCOdP2Q FNCNP2Q FNCEPS2Q NxFNCSales2Q NxFNCOP2Q NxFNCOdP2Q NxFNCNP2Q NxFNCEPS2Q "
        "FNCSales FNCOP FNCOdP FNCNP FNCEPS NxFNCSales NxFNCOP NxFNCOdP NxFNCNP NxFNCEPS "
        "ShEq NCShEq ROE NCROE", STRING)),
    "derivatives/bars/daily/futures": _typed(
        ("Code ProdCat Date", STRING), (_BAR, NUMBER), (_SESSION_BARS, NUMBER), ("Vo OI Va", NUMBER),
        ("CM", STRING), ("VoOA", NUMBER), ("EmMrgnTrgDiv LTD SQD", STRING), ("Settle", NUMBER), ("CCMFlag", STRING),
    ),
    "derivatives/bars/daily/options": _typed(
        ("Code ProdCat UndSSO Date", STRING), (_BAR, NUMBER), (_SESSION_BARS, NUMBER), ("Vo OI Va", NUMBER),
        ("CM", STRING), ("Strike VoOA", NUMBER), ("EmMrgnTrgDiv PCDiv LTD SQD", STRING),
        ("Settle Theo BaseVol UnderPx IV IR", NUMBER), ("CCMFlag", STRING),
    ),
    "derivatives/bars/daily/options/225": _typed(
        ("Date Code", STRING), (_BAR, NUMBER), ("EO EH EL EC AO AH AL AC Vo OI Va VoOA", NUMBER),
        ("CM", STRING), ("Strike", NUMBER), ("PCDiv LTD SQD", STRING),
        ("Settle Theo BaseVol UnderPx IV IR", NUMBER), ("EmMrgnTrgDiv", STRING),
    ),
    "equities/investor-types": _typed(
        ("PubDate StDate EnDate Section", STRING),
        (" ".join(f"{who}{side}" for who in ("Prop", "Brk", "Tot", "Ind", "Frgn", "SecCo", "InvTr", "BusCo", "OthCo",
                                             "InsCo", "Bank", "TrstBnk", "OthFin")
                  for side in ("Sell", "Buy", "Tot", "Bal")), NUMBER),
    ),
    "markets/margin-interest": _typed(
        ("PubDate Date Code IssType", STRING),
        ("ShrtVol LongVol ShrtNegVol LongNegVol ShrtStdVol LongStdVol", NUMBER),
        ("ShrtVal LongVal ShrtNegVal LongNegVal ShrtStdVal LongStdVal", NUMBER),
    ),
    "markets/margin-alert": _typed(
        ("PubDate Code AppDate", STRING), ("PubReason", OBJECT),
        ("ShrtOut ShrtOutChg ShrtOutRatio LongOut LongOutChg LongOutRatio SLRatio ShrtNegOut ShrtNegOutChg "
         "ShrtStdOut ShrtStdOutChg LongNegOut LongNegOutChg LongStdOut LongStdOutChg", NUMBER),
        ("TSEMrgnRegCls", STRING),
    ),
    "markets/short-ratio": _typed(("Date S33", STRING), ("SellExShortVa ShrtWithResVa ShrtNoResVa", NUMBER)),
    "markets/short-sale-report": _typed(
        ("DiscDate CalcDate Code SSName SSAddr DICName DICAddr FundName", STRING),
        ("ShrtPosToSO ShrtPosShares ShrtPosUnits", NUMBER), ("PrevRptDate", STRING), ("PrevRptRatio", NUMBER),
        ("Notes", STRING),
    ),
    "equities/earnings-calendar": _typed(("Date Code CoName FY SectorNm FQ Section", STRING)),
    "markets/breakdown": _typed(
        ("Date Code", STRING),
        ("LongSellVa ShrtNoMrgnVa MrgnSellNewVa MrgnSellCloseVa LongBuyVa MrgnBuyNewVa MrgnBuyCloseVa "
         "LongSellVo ShrtNoMrgnVo MrgnSellNewVo MrgnSellCloseVo LongBuyVo MrgnBuyNewVo MrgnBuyCloseVo", NUMBER),
    ),
    "fins/dividend": _typed(
        ("PubDate PubTime Code RefNo StatCode BoardDate IFCode FRCode IFTerm", STRING), ("DivRate", NUMBER),
        ("RecDate ExDate ActRecDate PayDate CARefNo", STRING),
        ("DistAmt RetEarn DeemDiv DeemCapGains NetAssetDecRatio", NUMBER), ("CommSpecCode", STRING),
        ("CommDivRate SpecDivRate", NUMBER),
    ),
}

# Members of object fields: each a "0"/"1" string.
V2_OBJECT_MEMBERS: dict[str, dict[str, tuple[str, ...]]] = {
    "markets/margin-alert": {"PubReason": ("Restricted", "DailyPublication", "Monitoring", "RestrictedByJSF",
                                           "PrecautionByJSF", "UnclearOrSecOnAlert")},
}

# Fields only the Premium plan receives (the morning and afternoon sessions of the daily bars).
PREMIUM_ONLY: dict[str, frozenset[str]] = {
    "equities/bars/daily": frozenset(_names(
        "MO MH ML MC MUL MLL MVo MVa MAdjO MAdjH MAdjL MAdjC MAdjVo "
        "AO AH AL AC AUL ALL AVo AVa AAdjO AAdjH AAdjL AAdjC AAdjVo")),
}

# v1 fins/statements (the deprecated API): its documented fields, for the v1 side of fins/summary. From
# the official client's v1 FINS_STATEMENTS_COLUMNS plus SignificantChangesInTheScopeOfConsolidation
# (added 2024-07-22). ShEq, NCShEq, ROE and NCROE exist only in v2.
V1_STATEMENTS_FIELDS: tuple[str, ...] = _names(
    "DisclosedDate DisclosedTime LocalCode DisclosureNumber TypeOfDocument TypeOfCurrentPeriod "
    "CurrentPeriodStartDate CurrentPeriodEndDate CurrentFiscalYearStartDate CurrentFiscalYearEndDate "
    "NextFiscalYearStartDate NextFiscalYearEndDate NetSales OperatingProfit OrdinaryProfit Profit EarningsPerShare "
    "DilutedEarningsPerShare TotalAssets Equity EquityToAssetRatio BookValuePerShare "
    "CashFlowsFromOperatingActivities CashFlowsFromInvestingActivities CashFlowsFromFinancingActivities "
    "CashAndEquivalents ResultDividendPerShare1stQuarter ResultDividendPerShare2ndQuarter "
    "ResultDividendPerShare3rdQuarter ResultDividendPerShareFiscalYearEnd ResultDividendPerShareAnnual "
    "DistributionsPerUnit(REIT) ResultTotalDividendPaidAnnual ResultPayoutRatioAnnual "
    "ForecastDividendPerShare1stQuarter ForecastDividendPerShare2ndQuarter ForecastDividendPerShare3rdQuarter "
    "ForecastDividendPerShareFiscalYearEnd ForecastDividendPerShareAnnual ForecastDistributionsPerUnit(REIT) "
    "ForecastTotalDividendPaidAnnual ForecastPayoutRatioAnnual NextYearForecastDividendPerShare1stQuarter "
    "NextYearForecastDividendPerShare2ndQuarter NextYearForecastDividendPerShare3rdQuarter "
    "NextYearForecastDividendPerShareFiscalYearEnd NextYearForecastDividendPerShareAnnual "
    "NextYearForecastDistributionsPerUnit(REIT) NextYearForecastPayoutRatioAnnual ForecastNetSales2ndQuarter "
    "ForecastOperatingProfit2ndQuarter ForecastOrdinaryProfit2ndQuarter ForecastProfit2ndQuarter "
    "ForecastEarningsPerShare2ndQuarter NextYearForecastNetSales2ndQuarter NextYearForecastOperatingProfit2ndQuarter "
    "NextYearForecastOrdinaryProfit2ndQuarter NextYearForecastProfit2ndQuarter "
    "NextYearForecastEarningsPerShare2ndQuarter ForecastNetSales ForecastOperatingProfit ForecastOrdinaryProfit "
    "ForecastProfit ForecastEarningsPerShare NextYearForecastNetSales NextYearForecastOperatingProfit "
    "NextYearForecastOrdinaryProfit NextYearForecastProfit NextYearForecastEarningsPerShare "
    "MaterialChangesInSubsidiaries SignificantChangesInTheScopeOfConsolidation "
    "ChangesBasedOnRevisionsOfAccountingStandard ChangesOtherThanOnesBasedOnRevisionsOfAccountingStandard "
    "ChangesInAccountingEstimates RetrospectiveRestatement "
    "NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock "
    "NumberOfTreasuryStockAtTheEndOfFiscalYear AverageNumberOfShares NonConsolidatedNetSales "
    "NonConsolidatedOperatingProfit NonConsolidatedOrdinaryProfit NonConsolidatedProfit "
    "NonConsolidatedEarningsPerShare NonConsolidatedTotalAssets NonConsolidatedEquity "
    "NonConsolidatedEquityToAssetRatio NonConsolidatedBookValuePerShare "
    "ForecastNonConsolidatedNetSales2ndQuarter ForecastNonConsolidatedOperatingProfit2ndQuarter "
    "ForecastNonConsolidatedOrdinaryProfit2ndQuarter ForecastNonConsolidatedProfit2ndQuarter "
    "ForecastNonConsolidatedEarningsPerShare2ndQuarter NextYearForecastNonConsolidatedNetSales2ndQuarter "
    "NextYearForecastNonConsolidatedOperatingProfit2ndQuarter NextYearForecastNonConsolidatedOrdinaryProfit2ndQuarter "
    "NextYearForecastNonConsolidatedProfit2ndQuarter NextYearForecastNonConsolidatedEarningsPerShare2ndQuarter "
    "ForecastNonConsolidatedNetSales ForecastNonConsolidatedOperatingProfit ForecastNonConsolidatedOrdinaryProfit "
    "ForecastNonConsolidatedProfit ForecastNonConsolidatedEarningsPerShare NextYearForecastNonConsolidatedNetSales "
    "NextYearForecastNonConsolidatedOperatingProfit NextYearForecastNonConsolidatedOrdinaryProfit "
    "NextYearForecastNonConsolidatedProfit NextYearForecastNonConsolidatedEarningsPerShare"
)
