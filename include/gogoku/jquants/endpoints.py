"""The J-Quants endpoints gogoku uses: one table that both the simulator server and the client read.

Every endpoint lists every field its v2 documentation lists (`gogoku.jquants.v2_fields` keeps those
lists, from the official client `J-Quants/jquants-api-client-python` 2.8.0 and the v2 spec pages; the
tests hold this table to them), with the v1 name the deprecated v1 API gives it. Frames inside gogoku
always carry the v1 names, typed: numbers Float64, dates Date, codes, flags and times Utf8. A field only
v2 sends (`in_v1=False`: ProdCat, fins/summary's ShEq/ROE, margin-interest's PubDate and yen balances)
keeps a v1-style column name and is null when the data came from a v1 API; a field only some plans
receive (`plans`: the daily bars' morning and afternoon sessions, Premium) is null for the others.
Number fields that the API sends as "-" or "*" (daily margin: no previous day, ratio not computed) are
null in gogoku's frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import polars as pl

from gogoku.contracts import cheapest, plans_from
from gogoku.errors import InputError


class Kind(Enum):
    """How a field travels on the wire and which polars type it gets in gogoku's frames."""

    DATE = "date"  # "YYYY-MM-DD" string -> pl.Date
    NUMBER = "number"  # JSON number (or a string in fins) -> pl.Float64
    STRING = "string"  # string -> pl.Utf8 (codes, flags, names, times "HH:MM:SS")


DTYPES: dict[Kind, type[pl.DataType]] = {Kind.DATE: pl.Date, Kind.NUMBER: pl.Float64, Kind.STRING: pl.Utf8}


@dataclass(frozen=True)
class Field:
    v1: str  # the column name in gogoku's frames (the v1 API's field name)
    v2: str
    kind: Kind
    v1_wire: str | None = None  # the v1 wire name when it differs from the column name (nested fields)
    in_v1: bool = True  # False: only v2 sends it; gogoku's column keeps a v1-style name, null from a v1 API
    plans: frozenset[str] | None = None  # the plans whose answers carry it (None: every plan)

    def wire(self, version: str) -> str:
        """The field's name on the wire; "Parent.Child" names a key of a nested JSON object."""
        return self.v2 if version == "v2" else (self.v1_wire or self.v1)

    def sent(self, version: str, plan: str) -> bool:
        """Whether an answer of `version` to an account on `plan` carries the field."""
        return (version == "v2" or self.in_v1) and (self.plans is None or plan in self.plans)


class Axis(Enum):
    """How the client splits a [start, end] request into API queries."""

    RANGE = "range"  # one query with from/to
    BUSINESS_DAY = "business_day"  # one `date` query per business day
    MONTHLY_SNAPSHOT = "monthly_snapshot"  # `date` = start and the first business day of each month


@dataclass(frozen=True)
class Endpoint:
    source: str
    v2_path: str
    v1_path: str
    v1_data_key: str
    date_column: str  # v1 name of the column a request's dates refer to
    fields: tuple[Field, ...]
    plans: frozenset[str]
    params: tuple[str, ...]  # v2 query parameters (besides pagination_key)
    required_any: tuple[str, ...]  # at least one of these must be given (empty: none required)
    sort_by: tuple[str, ...]  # v1 names, as the official client sorts
    axis: Axis
    strings_on_wire: bool = False  # fins: every value is a string, "" when empty
    v1_params: dict[str, str] = field(default_factory=dict)  # v2 query name -> v1 name where they differ
    range_params: tuple[str, str] = ("from", "to")  # the v2 names of a date range's bounds

    @property
    def schema(self) -> dict[str, type[pl.DataType]]:
        """v1 column name -> polars dtype of gogoku's typed frame."""
        return {f.v1: DTYPES[f.kind] for f in self.fields}

    def path(self, version: str) -> str:
        """Path under the base URL, e.g. `/v2/equities/bars/daily`."""
        return f"/{version}/{self.v2_path if version == 'v2' else self.v1_path}"

    def data_key(self, version: str) -> str:
        return "data" if version == "v2" else self.v1_data_key

    def wire_fields(self, version: str, plan: str) -> tuple[Field, ...]:
        """The fields an answer of `version` to an account on `plan` carries."""
        return tuple(f for f in self.fields if f.sent(version, plan))


def _fields(kind_by_v1: list[tuple[str, str, Kind]], *, in_v1: bool = True,
            plans: frozenset[str] | None = None) -> tuple[Field, ...]:
    return tuple(Field(v1, v2, kind, in_v1=in_v1, plans=plans) for v1, v2, kind in kind_by_v1)


D, N, S = Kind.DATE, Kind.NUMBER, Kind.STRING

FREE = plans_from("free")
LIGHT = plans_from("light")
PREMIUM = plans_from("premium")

LISTED_INFO = Endpoint(
    source="listed_info",
    v2_path="equities/master",
    v1_path="listed/info",
    v1_data_key="info",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S), ("CompanyName", "CoName", S),
        ("CompanyNameEnglish", "CoNameEn", S), ("Sector17Code", "S17", S), ("Sector17CodeName", "S17Nm", S),
        ("Sector33Code", "S33", S), ("Sector33CodeName", "S33Nm", S), ("ScaleCategory", "ScaleCat", S),
        ("MarketCode", "Mkt", S), ("MarketCodeName", "MktNm", S), ("MarginCode", "Mrgn", S),
        ("MarginCodeName", "MrgnNm", S),
    ]) + _fields([("ProductCategory", "ProdCat", S)], in_v1=False),  # "011" domestic stocks, "013" REITs, ...
    plans=FREE,
    params=("code", "date"),
    required_any=(),
    sort_by=("Date", "Code"),
    axis=Axis.MONTHLY_SNAPSHOT,
)

TRADING_CALENDAR = Endpoint(
    source="trading_calendar",
    v2_path="markets/calendar",
    v1_path="markets/trading_calendar",
    v1_data_key="trading_calendar",
    date_column="Date",
    fields=_fields([("Date", "Date", D), ("HolidayDivision", "HolDiv", S)]),
    plans=FREE,
    params=("hol_div", "from", "to"),
    required_any=(),
    sort_by=("Date",),
    axis=Axis.RANGE,
    v1_params={"hol_div": "holidaydivision"},
)

_SESSION_FIELDS = (
    ("Open", "O", N), ("High", "H", N), ("Low", "L", N), ("Close", "C", N), ("UpperLimit", "UL", S),
    ("LowerLimit", "LL", S), ("Volume", "Vo", N), ("TurnoverValue", "Va", N), ("AdjustmentOpen", "AdjO", N),
    ("AdjustmentHigh", "AdjH", N), ("AdjustmentLow", "AdjL", N), ("AdjustmentClose", "AdjC", N),
    ("AdjustmentVolume", "AdjVo", N),
)

DAILY_QUOTES = Endpoint(
    source="daily_quotes",
    v2_path="equities/bars/daily",
    v1_path="prices/daily_quotes",
    v1_data_key="daily_quotes",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S), ("Open", "O", N), ("High", "H", N), ("Low", "L", N),
        ("Close", "C", N), ("UpperLimit", "UL", S), ("LowerLimit", "LL", S), ("Volume", "Vo", N),
        ("TurnoverValue", "Va", N), ("AdjustmentFactor", "AdjFactor", N), ("AdjustmentOpen", "AdjO", N),
        ("AdjustmentHigh", "AdjH", N), ("AdjustmentLow", "AdjL", N), ("AdjustmentClose", "AdjC", N),
        ("AdjustmentVolume", "AdjVo", N),
    ]) + _fields([
        (f"{session}{name}", f"{prefix}{short}", kind) for session, prefix in (("Morning", "M"), ("Afternoon", "A"))
        for name, short, kind in _SESSION_FIELDS
    ], plans=frozenset({"premium"})),  # the morning and afternoon sessions: Premium answers only
    plans=FREE,
    params=("code", "date", "from", "to"),
    required_any=("date", "code"),
    sort_by=("Code", "Date"),
    axis=Axis.BUSINESS_DAY,
)

TOPIX = Endpoint(
    source="topix",
    v2_path="indices/bars/daily/topix",
    v1_path="indices/topix",
    v1_data_key="topix",
    date_column="Date",
    fields=_fields([("Date", "Date", D), ("Open", "O", N), ("High", "H", N), ("Low", "L", N), ("Close", "C", N)]),
    plans=LIGHT,
    params=("from", "to"),
    required_any=(),
    sort_by=("Date",),
    axis=Axis.RANGE,
)

_DIVIDENDS = (("1stQuarter", "1Q"), ("2ndQuarter", "2Q"), ("3rdQuarter", "3Q"), ("FiscalYearEnd", "FY"),
              ("Annual", "Ann"))
_PL = (("NetSales", "Sales"), ("OperatingProfit", "OP"), ("OrdinaryProfit", "OdP"), ("Profit", "NP"),
       ("EarningsPerShare", "EPS"))


def _forecasts(nc: bool, suffix: tuple[str, str]) -> list[tuple[str, str, Kind]]:
    """This year's and next year's forecasts of the P&L lines (non-consolidated when `nc`), e.g.
    ForecastNetSales2ndQuarter / FSales2Q. v2 spells next year's consolidated profit `NxFNp`."""
    out = []
    for v1_year, v2_year in (("Forecast", "F"), ("NextYearForecast", "NxF")):
        for v1, v2 in _PL:
            v2 = "Np" if v2 == "NP" and v2_year == "NxF" and not nc else v2
            out.append((f"{v1_year}{'NonConsolidated' if nc else ''}{v1}{suffix[0]}",
                        f"{v2_year}{'NC' if nc else ''}{v2}{suffix[1]}", N))
    return out


# fins/statements (v1) and fins/summary (v2) in the documented order; every value is a string on the wire.
_STATEMENT_FIELDS = _fields([
    ("DisclosedDate", "DiscDate", D), ("DisclosedTime", "DiscTime", S), ("LocalCode", "Code", S),
    ("DisclosureNumber", "DiscNo", S), ("TypeOfDocument", "DocType", S), ("TypeOfCurrentPeriod", "CurPerType", S),
    ("CurrentPeriodStartDate", "CurPerSt", D), ("CurrentPeriodEndDate", "CurPerEn", D),
    ("CurrentFiscalYearStartDate", "CurFYSt", D), ("CurrentFiscalYearEndDate", "CurFYEn", D),
    ("NextFiscalYearStartDate", "NxtFYSt", D), ("NextFiscalYearEndDate", "NxtFYEn", D),
    ("NetSales", "Sales", N), ("OperatingProfit", "OP", N), ("OrdinaryProfit", "OdP", N), ("Profit", "NP", N),
    ("EarningsPerShare", "EPS", N), ("DilutedEarningsPerShare", "DEPS", N), ("TotalAssets", "TA", N),
    ("Equity", "Eq", N), ("EquityToAssetRatio", "EqAR", N), ("BookValuePerShare", "BPS", N),
    ("CashFlowsFromOperatingActivities", "CFO", N), ("CashFlowsFromInvestingActivities", "CFI", N),
    ("CashFlowsFromFinancingActivities", "CFF", N), ("CashAndEquivalents", "CashEq", N),
    *[(f"ResultDividendPerShare{v1}", f"Div{v2}", N) for v1, v2 in _DIVIDENDS],
    ("DistributionsPerUnit(REIT)", "DivUnit", N), ("ResultTotalDividendPaidAnnual", "DivTotalAnn", N),
    ("ResultPayoutRatioAnnual", "PayoutRatioAnn", N),
    *[(f"ForecastDividendPerShare{v1}", f"FDiv{v2}", N) for v1, v2 in _DIVIDENDS],
    ("ForecastDistributionsPerUnit(REIT)", "FDivUnit", N), ("ForecastTotalDividendPaidAnnual", "FDivTotalAnn", N),
    ("ForecastPayoutRatioAnnual", "FPayoutRatioAnn", N),
    *[(f"NextYearForecastDividendPerShare{v1}", f"NxFDiv{v2}", N) for v1, v2 in _DIVIDENDS],
    ("NextYearForecastDistributionsPerUnit(REIT)", "NxFDivUnit", N),
    ("NextYearForecastPayoutRatioAnnual", "NxFPayoutRatioAnn", N),
    *_forecasts(False, ("2ndQuarter", "2Q")), *_forecasts(False, ("", "")),
    ("MaterialChangesInSubsidiaries", "MatChgSub", S), ("SignificantChangesInTheScopeOfConsolidation", "SigChgInC", S),
    ("ChangesBasedOnRevisionsOfAccountingStandard", "ChgByASRev", S),
    ("ChangesOtherThanOnesBasedOnRevisionsOfAccountingStandard", "ChgNoASRev", S),
    ("ChangesInAccountingEstimates", "ChgAcEst", S), ("RetrospectiveRestatement", "RetroRst", S),
    ("NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock", "ShOutFY", N),
    ("NumberOfTreasuryStockAtTheEndOfFiscalYear", "TrShFY", N), ("AverageNumberOfShares", "AvgSh", N),
    *[(f"NonConsolidated{v1}", f"NC{v2}", N) for v1, v2 in _PL],
    ("NonConsolidatedTotalAssets", "NCTA", N), ("NonConsolidatedEquity", "NCEq", N),
    ("NonConsolidatedEquityToAssetRatio", "NCEqAR", N), ("NonConsolidatedBookValuePerShare", "NCBPS", N),
    *_forecasts(True, ("2ndQuarter", "2Q")), *_forecasts(True, ("", "")),
]) + _fields([
    # v2 only: owners' equity (consolidated, non-consolidated) and return on it.
    ("ShareholdersEquity", "ShEq", N), ("NonConsolidatedShareholdersEquity", "NCShEq", N),
    ("ReturnOnEquity", "ROE", N), ("NonConsolidatedReturnOnEquity", "NCROE", N),
], in_v1=False)

STATEMENTS = Endpoint(
    source="statements",
    v2_path="fins/summary",
    v1_path="fins/statements",
    v1_data_key="statements",
    date_column="DisclosedDate",
    fields=_STATEMENT_FIELDS,
    plans=FREE,
    params=("code", "date"),
    required_any=("date", "code"),
    sort_by=("DisclosedDate", "DisclosedTime", "LocalCode"),
    axis=Axis.BUSINESS_DAY,
    strings_on_wire=True,
)

FUTURES = Endpoint(
    source="futures",
    v2_path="derivatives/bars/daily/futures",
    v1_path="derivatives/futures",
    v1_data_key="futures",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S), ("DerivativesProductCategory", "ProdCat", S),
        ("WholeDayOpen", "O", N), ("WholeDayHigh", "H", N), ("WholeDayLow", "L", N), ("WholeDayClose", "C", N),
        ("MorningSessionOpen", "MO", N), ("MorningSessionHigh", "MH", N), ("MorningSessionLow", "ML", N),
        ("MorningSessionClose", "MC", N),
        ("NightSessionOpen", "EO", N), ("NightSessionHigh", "EH", N), ("NightSessionLow", "EL", N),
        ("NightSessionClose", "EC", N), ("DaySessionOpen", "AO", N), ("DaySessionHigh", "AH", N),
        ("DaySessionLow", "AL", N), ("DaySessionClose", "AC", N), ("Volume", "Vo", N), ("OpenInterest", "OI", N),
        ("TurnoverValue", "Va", N), ("ContractMonth", "CM", S), ("Volume(OnlyAuction)", "VoOA", N),
        ("EmergencyMarginTriggerDivision", "EmMrgnTrgDiv", S),
        ("LastTradingDay", "LTD", D), ("SpecialQuotationDay", "SQD", D), ("SettlementPrice", "Settle", N),
        ("CentralContractMonthFlag", "CCMFlag", S),
    ]),
    plans=PREMIUM,
    params=("date", "category", "contract_flag"),
    required_any=("date",),
    sort_by=("Date", "Code"),
    axis=Axis.BUSINESS_DAY,
)

# Nikkei 225 options (v2 names as DERIVATIVES_OPTIONS_225_COLUMNS): no morning session, no central flag.
INDEX_OPTION = Endpoint(
    source="index_option",
    v2_path="derivatives/bars/daily/options/225",
    v1_path="option/index_option",
    v1_data_key="index_option",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S),
        ("WholeDayOpen", "O", N), ("WholeDayHigh", "H", N), ("WholeDayLow", "L", N), ("WholeDayClose", "C", N),
        ("NightSessionOpen", "EO", N), ("NightSessionHigh", "EH", N), ("NightSessionLow", "EL", N),
        ("NightSessionClose", "EC", N), ("DaySessionOpen", "AO", N), ("DaySessionHigh", "AH", N),
        ("DaySessionLow", "AL", N), ("DaySessionClose", "AC", N), ("Volume", "Vo", N), ("OpenInterest", "OI", N),
        ("TurnoverValue", "Va", N), ("ContractMonth", "CM", S), ("StrikePrice", "Strike", N),
        ("Volume(OnlyAuction)", "VoOA", N), ("EmergencyMarginTriggerDivision", "EmMrgnTrgDiv", S),
        ("PutCallDivision", "PCDiv", S), ("LastTradingDay", "LTD", D), ("SpecialQuotationDay", "SQD", D),
        ("SettlementPrice", "Settle", N), ("TheoreticalPrice", "Theo", N), ("BaseVolatility", "BaseVol", N),
        ("UnderlyingPrice", "UnderPx", N), ("ImpliedVolatility", "IV", N), ("InterestRate", "IR", N),
    ]),
    plans=frozenset({"standard", "premium"}),
    params=("date",),
    required_any=("date",),
    sort_by=("Date", "Code"),
    axis=Axis.BUSINESS_DAY,
)

STANDARD = frozenset({"standard", "premium"})

_INVESTORS = (
    ("Proprietary", "Prop"), ("Brokerage", "Brk"), ("Total", "Tot"), ("Individuals", "Ind"), ("Foreigners", "Frgn"),
    ("SecuritiesCos", "SecCo"), ("InvestmentTrusts", "InvTr"), ("BusinessCos", "BusCo"), ("OtherCos", "OthCo"),
    ("InsuranceCos", "InsCo"), ("CityBKsRegionalBKsEtc", "Bank"), ("TrustBanks", "TrstBnk"),
    ("OtherFinancialInstitutions", "OthFin"),
)
_TRADE_SIDES = (("Sales", "Sell"), ("Purchases", "Buy"), ("Total", "Tot"), ("Balance", "Bal"))

TRADES_SPEC = Endpoint(
    source="trades_spec",
    v2_path="equities/investor-types",
    v1_path="markets/trades_spec",
    v1_data_key="trades_spec",
    date_column="PublishedDate",
    fields=_fields([
        ("Section", "Section", S), ("PublishedDate", "PubDate", D), ("StartDate", "StDate", D), ("EndDate", "EnDate", D),
        *[(f"{i1}{s1}", f"{i2}{s2}", N) for i1, i2 in _INVESTORS for s1, s2 in _TRADE_SIDES],
    ]),
    plans=LIGHT,
    params=("section", "from", "to"),
    required_any=(),
    sort_by=("PublishedDate", "Section"),
    axis=Axis.RANGE,
)

WEEKLY_MARGIN_INTEREST = Endpoint(
    source="weekly_margin_interest",
    v2_path="markets/margin-interest",
    v1_path="markets/weekly_margin_interest",
    v1_data_key="weekly_margin_interest",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S),
        ("ShortMarginTradeVolume", "ShrtVol", N), ("LongMarginTradeVolume", "LongVol", N),
        ("ShortNegotiableMarginTradeVolume", "ShrtNegVol", N), ("LongNegotiableMarginTradeVolume", "LongNegVol", N),
        ("ShortStandardizedMarginTradeVolume", "ShrtStdVol", N), ("LongStandardizedMarginTradeVolume", "LongStdVol", N),
        ("IssueType", "IssType", S),
    ]) + _fields([
        # v2 only, since the 2026-09-28 revision: the publication date and the balances in yen (null for
        # applications before 2026-09-25).
        ("PublishedDate", "PubDate", D), ("ShortMarginTradeValue", "ShrtVal", N), ("LongMarginTradeValue", "LongVal", N),
        ("ShortNegotiableMarginTradeValue", "ShrtNegVal", N), ("LongNegotiableMarginTradeValue", "LongNegVal", N),
        ("ShortStandardizedMarginTradeValue", "ShrtStdVal", N), ("LongStandardizedMarginTradeValue", "LongStdVal", N),
    ], in_v1=False),
    plans=STANDARD,
    params=("code", "date", "from", "to"),
    required_any=(),
    sort_by=("Date", "Code"),
    axis=Axis.RANGE,
)

# Both versions nest PublishReason as an object of "0"/"1" strings (v2 `PubReason`, v1 `PublishReason`);
# wire names "Parent.Child" say so, and gogoku's frames keep one Utf8 column per flag.
PUBLISH_REASONS = ("Restricted", "DailyPublication", "Monitoring", "RestrictedByJSF", "PrecautionByJSF",
                   "UnclearOrSecOnAlert")

DAILY_MARGIN_INTEREST = Endpoint(
    source="daily_margin_interest",
    v2_path="markets/margin-alert",
    v1_path="markets/daily_margin_interest",
    v1_data_key="daily_margin_interest",
    date_column="PublishedDate",
    fields=_fields([
        ("PublishedDate", "PubDate", D), ("Code", "Code", S), ("ApplicationDate", "AppDate", D),
    ]) + tuple(
        Field(f"PublishReason_{r}", f"PubReason.{r}", S, f"PublishReason.{r}") for r in PUBLISH_REASONS
    ) + _fields([
        ("ShortMarginOutstanding", "ShrtOut", N), ("DailyChangeShortMarginOutstanding", "ShrtOutChg", N),
        ("ShortMarginOutstandingListedShareRatio", "ShrtOutRatio", N),
        ("LongMarginOutstanding", "LongOut", N), ("DailyChangeLongMarginOutstanding", "LongOutChg", N),
        ("LongMarginOutstandingListedShareRatio", "LongOutRatio", N), ("ShortLongRatio", "SLRatio", N),
        ("ShortNegotiableMarginOutstanding", "ShrtNegOut", N),
        ("DailyChangeShortNegotiableMarginOutstanding", "ShrtNegOutChg", N),
        ("ShortStandardizedMarginOutstanding", "ShrtStdOut", N),
        ("DailyChangeShortStandardizedMarginOutstanding", "ShrtStdOutChg", N),
        ("LongNegotiableMarginOutstanding", "LongNegOut", N),
        ("DailyChangeLongNegotiableMarginOutstanding", "LongNegOutChg", N),
        ("LongStandardizedMarginOutstanding", "LongStdOut", N),
        ("DailyChangeLongStandardizedMarginOutstanding", "LongStdOutChg", N),
        ("TSEMarginBorrowingAndLendingRegulationClassification", "TSEMrgnRegCls", S),
    ]),
    plans=STANDARD,
    params=("code", "date", "from", "to"),
    required_any=("date", "code"),
    sort_by=("PublishedDate", "Code"),
    axis=Axis.BUSINESS_DAY,
)

SHORT_SELLING = Endpoint(
    source="short_selling",
    v2_path="markets/short-ratio",
    v1_path="markets/short_selling",
    v1_data_key="short_selling",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Sector33Code", "S33", S),
        ("SellingExcludingShortSellingTurnoverValue", "SellExShortVa", N),
        ("ShortSellingWithRestrictionsTurnoverValue", "ShrtWithResVa", N),
        ("ShortSellingWithoutRestrictionsTurnoverValue", "ShrtNoResVa", N),
    ]),
    plans=STANDARD,
    params=("s33", "date", "from", "to"),
    required_any=(),
    sort_by=("Date", "Sector33Code"),
    axis=Axis.RANGE,
    v1_params={"s33": "sector33code"},
)

SHORT_SELLING_POSITIONS = Endpoint(
    source="short_selling_positions",
    v2_path="markets/short-sale-report",
    v1_path="markets/short_selling_positions",
    v1_data_key="short_selling_positions",
    date_column="DisclosedDate",
    fields=_fields([
        ("DisclosedDate", "DiscDate", D), ("CalculatedDate", "CalcDate", D), ("Code", "Code", S),
        ("ShortSellerName", "SSName", S), ("ShortSellerAddress", "SSAddr", S),
        ("DiscretionaryInvestmentContractorName", "DICName", S),
        ("DiscretionaryInvestmentContractorAddress", "DICAddr", S), ("InvestmentFundName", "FundName", S),
        ("ShortPositionsToSharesOutstandingRatio", "ShrtPosToSO", N), ("ShortPositionsInSharesNumber", "ShrtPosShares", N),
        ("ShortPositionsInTradingUnitsNumber", "ShrtPosUnits", N),
        ("CalculationInPreviousReportingDate", "PrevRptDate", D),
        ("ShortPositionsInPreviousReportingRatio", "PrevRptRatio", N), ("Notes", "Notes", S),
    ]),
    plans=STANDARD,
    params=("code", "disc_date", "disc_date_from", "disc_date_to", "calc_date"),
    required_any=(),
    sort_by=("DisclosedDate", "CalculatedDate", "Code"),
    axis=Axis.RANGE,
    v1_params={"disc_date": "disclosed_date", "disc_date_from": "disclosed_date_from",
               "disc_date_to": "disclosed_date_to", "calc_date": "calculated_date"},
    range_params=("disc_date_from", "disc_date_to"),
)

ANNOUNCEMENT = Endpoint(
    source="announcement",
    v2_path="equities/earnings-calendar",
    v1_path="fins/announcement",
    v1_data_key="announcement",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S), ("CompanyName", "CoName", S), ("FiscalYear", "FY", S),
        ("SectorName", "SectorNm", S), ("FiscalQuarter", "FQ", S), ("Section", "Section", S),
    ]),
    plans=FREE,
    params=("date", "from", "to"),
    required_any=(),
    sort_by=("Date", "Code"),
    axis=Axis.RANGE,
)

INDICES = Endpoint(
    source="indices",
    v2_path="indices/bars/daily",
    v1_path="indices",
    v1_data_key="indices",
    date_column="Date",
    fields=_fields([("Date", "Date", D), ("Code", "Code", S), ("Open", "O", N), ("High", "H", N), ("Low", "L", N),
                    ("Close", "C", N)]),
    plans=STANDARD,
    params=("code", "date", "from", "to"),
    required_any=("date", "code"),
    sort_by=("Date", "Code"),
    axis=Axis.BUSINESS_DAY,
)

PRICES_AM = Endpoint(
    source="prices_am",
    v2_path="equities/bars/daily/am",
    v1_path="prices/prices_am",
    v1_data_key="prices_am",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S), ("MorningOpen", "MO", N), ("MorningHigh", "MH", N),
        ("MorningLow", "ML", N), ("MorningClose", "MC", N), ("MorningVolume", "MVo", N),
        ("MorningTurnoverValue", "MVa", N),
    ]),
    plans=PREMIUM,
    params=("code", "date"),
    required_any=("date", "code"),
    sort_by=("Code", "Date"),
    axis=Axis.BUSINESS_DAY,
)

_BREAKDOWN = (("LongSell", "LongSell"), ("ShortSellWithoutMargin", "ShrtNoMrgn"), ("MarginSellNew", "MrgnSellNew"),
              ("MarginSellClose", "MrgnSellClose"), ("LongBuy", "LongBuy"), ("MarginBuyNew", "MrgnBuyNew"),
              ("MarginBuyClose", "MrgnBuyClose"))

BREAKDOWN = Endpoint(
    source="breakdown",
    v2_path="markets/breakdown",
    v1_path="markets/breakdown",
    v1_data_key="breakdown",
    date_column="Date",
    fields=_fields([
        ("Date", "Date", D), ("Code", "Code", S),
        *[(f"{a}{u1}", f"{b}{u2}", N) for u1, u2 in (("Value", "Va"), ("Volume", "Vo")) for a, b in _BREAKDOWN],
    ]),
    plans=PREMIUM,
    params=("code", "date", "from", "to"),
    required_any=("date", "code"),
    sort_by=("Code", "Date"),
    axis=Axis.BUSINESS_DAY,
)

DIVIDEND = Endpoint(
    source="dividend",
    v2_path="fins/dividend",
    v1_path="fins/dividend",
    v1_data_key="dividend",
    date_column="AnnouncementDate",
    fields=_fields([
        ("AnnouncementDate", "PubDate", D), ("AnnouncementTime", "PubTime", S), ("Code", "Code", S),
        ("ReferenceNumber", "RefNo", S), ("StatusCode", "StatCode", S), ("BoardMeetingDate", "BoardDate", D),
        ("InterimFinalCode", "IFCode", S), ("ForecastResultCode", "FRCode", S), ("InterimFinalTerm", "IFTerm", S),
        ("GrossDividendRate", "DivRate", N), ("RecordDate", "RecDate", D), ("ExDate", "ExDate", D),
        ("ActualRecordDate", "ActRecDate", D), ("PayableDate", "PayDate", D), ("CAReferenceNumber", "CARefNo", S),
        ("DistributionAmount", "DistAmt", N), ("RetainedEarnings", "RetEarn", N), ("DeemedDividend", "DeemDiv", N),
        ("DeemedCapitalGains", "DeemCapGains", N), ("NetAssetDecreaseRatio", "NetAssetDecRatio", N),
        ("CommemorativeSpecialCode", "CommSpecCode", S), ("CommemorativeDividendRate", "CommDivRate", N),
        ("SpecialDividendRate", "SpecDivRate", N),
    ]),
    plans=PREMIUM,
    params=("code", "date", "from", "to"),
    required_any=("date", "code"),
    sort_by=("AnnouncementDate", "AnnouncementTime", "Code"),
    axis=Axis.BUSINESS_DAY,
)

# derivatives/options: every option series (the simulator lists the Nikkei 225 ones, category NK225E): the
# index-option fields plus the product category, morning session, underlying SSO and central-month flag.
_OPTION_EXTRA = {
    "Code": _fields([("DerivativesProductCategory", "ProdCat", S)]),
    "DaySessionClose": _fields([("MorningSessionOpen", "MO", N), ("MorningSessionHigh", "MH", N),
                                ("MorningSessionLow", "ML", N), ("MorningSessionClose", "MC", N)]),
    "InterestRate": _fields([("UnderlyingSSO", "UndSSO", S), ("CentralContractMonthFlag", "CCMFlag", S)]),
}
OPTIONS = Endpoint(
    source="options",
    v2_path="derivatives/bars/daily/options",
    v1_path="derivatives/options",
    v1_data_key="options",
    date_column="Date",
    fields=tuple(f for base in INDEX_OPTION.fields for f in (base, *_OPTION_EXTRA.get(base.v1, ()))),
    plans=PREMIUM,
    params=("date", "category", "code", "contract_flag"),
    required_any=("date",),
    sort_by=("Date", "Code"),
    axis=Axis.BUSINESS_DAY,
)

ENDPOINTS: dict[str, Endpoint] = {
    e.source: e for e in (
        LISTED_INFO, TRADING_CALENDAR, DAILY_QUOTES, TOPIX, STATEMENTS, FUTURES, TRADES_SPEC, WEEKLY_MARGIN_INTEREST,
        DAILY_MARGIN_INTEREST, SHORT_SELLING, SHORT_SELLING_POSITIONS, ANNOUNCEMENT, INDICES, PRICES_AM, BREAKDOWN,
        DIVIDEND, INDEX_OPTION, OPTIONS,
    )
}


def full_code(raw: str) -> str:
    """A J-Quants stock code in its 5-character form: 4-character codes name the common stock ('7203' -> '72030')."""
    code = raw.strip()
    return code + "0" if len(code) == 4 else code


def endpoint(source: str) -> Endpoint:
    try:
        return ENDPOINTS[source]
    except KeyError:
        raise InputError(f"source {source!r} is unknown; known: {', '.join(ENDPOINTS)}") from None


def minimum_plan(source: str) -> str:
    """The cheapest plan tier that may call `source`."""
    plans = endpoint(source).plans
    return cheapest(plans)
