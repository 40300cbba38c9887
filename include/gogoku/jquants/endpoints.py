"""The J-Quants endpoints gogoku uses: one table that both the simulator server and the client read.

Field names come from the official client `J-Quants/jquants-api-client-python` (constants.py:
EQ_BARS_DAILY_COLUMNS_V2, EQ_MASTER_COLUMNS_V2, MARKETS_TRADING_CALENDAR_COLUMNS_V2,
INDICES_TOPIX_COLUMNS_V2, FIN_SUMMARY_COLUMNS_V2, DERIVATIVES_FUTURES_COLUMNS_V2 and their v1
counterparts). Frames inside gogoku always carry the v1 names, typed (contract 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import polars as pl

from gogoku.errors import InputError


class Kind(Enum):
    """How a field travels on the wire and which polars type it gets in gogoku's frames."""

    DATE = "date"  # "YYYY-MM-DD" string -> pl.Date
    NUMBER = "number"  # JSON number (or a string in fins) -> pl.Float64
    STRING = "string"  # string -> pl.Utf8 (codes, flags, names, times "HH:MM:SS")


DTYPES: dict[Kind, type[pl.DataType]] = {Kind.DATE: pl.Date, Kind.NUMBER: pl.Float64, Kind.STRING: pl.Utf8}


@dataclass(frozen=True)
class Field:
    v1: str
    v2: str
    kind: Kind


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

    @property
    def schema(self) -> dict[str, type[pl.DataType]]:
        """v1 column name -> polars dtype of gogoku's typed frame."""
        return {f.v1: DTYPES[f.kind] for f in self.fields}

    def path(self, version: str) -> str:
        """Path under the base URL, e.g. `/v2/equities/bars/daily`."""
        return f"/{version}/{self.v2_path if version == 'v2' else self.v1_path}"

    def data_key(self, version: str) -> str:
        return "data" if version == "v2" else self.v1_data_key


def _fields(kind_by_v1: list[tuple[str, str, Kind]]) -> tuple[Field, ...]:
    return tuple(Field(v1, v2, kind) for v1, v2, kind in kind_by_v1)


D, N, S = Kind.DATE, Kind.NUMBER, Kind.STRING

FREE = frozenset({"free", "light", "standard", "premium"})
LIGHT = frozenset({"light", "standard", "premium"})
PREMIUM = frozenset({"premium"})

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
    ]),
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
    ]),
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

STATEMENTS = Endpoint(
    source="statements",
    v2_path="fins/summary",
    v1_path="fins/statements",
    v1_data_key="statements",
    date_column="DisclosedDate",
    fields=_fields([
        ("DisclosedDate", "DiscDate", D), ("DisclosedTime", "DiscTime", S), ("LocalCode", "Code", S),
        ("DisclosureNumber", "DiscNo", S), ("TypeOfDocument", "DocType", S), ("TypeOfCurrentPeriod", "CurPerType", S),
        ("CurrentPeriodStartDate", "CurPerSt", D), ("CurrentPeriodEndDate", "CurPerEn", D),
        ("CurrentFiscalYearStartDate", "CurFYSt", D), ("CurrentFiscalYearEndDate", "CurFYEn", D),
        ("NextFiscalYearStartDate", "NxtFYSt", D), ("NextFiscalYearEndDate", "NxtFYEn", D),
        ("NetSales", "Sales", N), ("OperatingProfit", "OP", N), ("OrdinaryProfit", "OdP", N), ("Profit", "NP", N),
        ("EarningsPerShare", "EPS", N), ("TotalAssets", "TA", N), ("Equity", "Eq", N),
        ("EquityToAssetRatio", "EqAR", N), ("BookValuePerShare", "BPS", N),
        ("ForecastNetSales", "FSales", N), ("ForecastOperatingProfit", "FOP", N),
        ("ForecastOrdinaryProfit", "FOdP", N), ("ForecastProfit", "FNP", N), ("ForecastEarningsPerShare", "FEPS", N),
        ("NextYearForecastNetSales", "NxFSales", N), ("NextYearForecastOperatingProfit", "NxFOP", N),
        ("NextYearForecastOrdinaryProfit", "NxFOdP", N), ("NextYearForecastProfit", "NxFNp", N),
        ("NextYearForecastEarningsPerShare", "NxFEPS", N),
        ("NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock", "ShOutFY", N),
        ("NumberOfTreasuryStockAtTheEndOfFiscalYear", "TrShFY", N), ("AverageNumberOfShares", "AvgSh", N),
    ]),
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
        ("NightSessionOpen", "EO", N), ("NightSessionHigh", "EH", N), ("NightSessionLow", "EL", N),
        ("NightSessionClose", "EC", N), ("DaySessionOpen", "AO", N), ("DaySessionHigh", "AH", N),
        ("DaySessionLow", "AL", N), ("DaySessionClose", "AC", N), ("Volume", "Vo", N), ("OpenInterest", "OI", N),
        ("TurnoverValue", "Va", N), ("ContractMonth", "CM", S), ("EmergencyMarginTriggerDivision", "EmMrgnTrgDiv", S),
        ("LastTradingDay", "LTD", D), ("SpecialQuotationDay", "SQD", D), ("SettlementPrice", "Settle", N),
        ("CentralContractMonthFlag", "CCMFlag", S),
    ]),
    plans=PREMIUM,
    params=("date", "category", "contract_flag"),
    required_any=("date",),
    sort_by=("Date", "Code"),
    axis=Axis.BUSINESS_DAY,
)

ENDPOINTS: dict[str, Endpoint] = {
    e.source: e for e in (LISTED_INFO, TRADING_CALENDAR, DAILY_QUOTES, TOPIX, STATEMENTS, FUTURES)
}


def endpoint(source: str) -> Endpoint:
    try:
        return ENDPOINTS[source]
    except KeyError:
        raise InputError(f"source {source!r} is unknown; known: {', '.join(ENDPOINTS)}") from None


def minimum_plan(source: str) -> str:
    """The cheapest plan tier that may call `source`."""
    plans = endpoint(source).plans
    return next(p for p in ("free", "light", "standard", "premium") if p in plans)
