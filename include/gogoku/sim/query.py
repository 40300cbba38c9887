"""What a simulator query returns: J-Quants query parameters -> the rows of a `SimMarket` table.

Parameters are validated as the real API validates them; a bad one raises `BadRequest` with the API's
message, which the server answers with 400.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from gogoku.jquants.endpoints import Endpoint, full_code
from gogoku.sim.market import SimMarket


class BadRequest(Exception):
    """A 400 answer with the API's message."""


def parse_date(name: str, raw: str) -> dt.date:
    """A date given as YYYYMMDD or YYYY-MM-DD; `BadRequest` naming the parameter otherwise."""
    text = raw.strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise BadRequest(f"The '{name}' parameter is invalid: {raw!r}. Specify a date as YYYYMMDD or YYYY-MM-DD.")


def _dates(query: dict[str, str]) -> tuple[dt.date | None, dt.date | None]:
    """(lo, hi) from `date` or from/to (date wins, as the official client sends one or the other)."""
    if query.get("date"):
        d = parse_date("date", query["date"])
        return d, d
    lo = parse_date("from", query["from"]) if query.get("from") else None
    hi = parse_date("to", query["to"]) if query.get("to") else None
    return lo, hi


_DERIVATIVE_FILTERS = {"category": "DerivativesProductCategory", "contract_flag": "CentralContractMonthFlag",
                       "code": "Code"}


def _filtered(frame: pl.DataFrame, query: dict[str, str], params: tuple[str, ...]) -> pl.DataFrame:
    """Derivatives rows narrowed by the query's category / central-month flag / code."""
    for param in params:
        if query.get(param):
            frame = frame.filter(pl.col(_DERIVATIVE_FILTERS[param]) == query[param].strip())
    return frame


def select_rows(market: SimMarket, spec: Endpoint, query: dict[str, str]) -> pl.DataFrame:
    """The rows a query asks for, v1-named and typed, in the server's stable order."""
    lo, hi = _dates(query)
    code = full_code(query["code"]) if query.get("code") else None
    source = spec.source
    if source == "listed_info":
        return market.listed_info(lo, code)
    if source == "trading_calendar":
        frame = market.trading_calendar(lo, hi)
        return frame.filter(pl.col("HolidayDivision") == query["hol_div"]) if query.get("hol_div") else frame
    if source == "daily_quotes":
        return market.daily_quotes(lo, hi, code)
    if source == "topix":
        return market.topix(lo, hi)
    if source == "statements":
        return market.statements(lo, hi, code)
    if source == "futures":
        return _filtered(market.futures(lo, hi), query, ("category", "contract_flag"))
    if source == "index_option":
        return market.index_option(lo, hi)  # the real API filters by `date` only
    if source == "options":
        return _filtered(market.options(lo, hi), query, ("category", "contract_flag", "code"))
    if source in _MARKET_TABLES:
        return _market_table(market, source, query, lo, hi, code)
    raise KeyError(source)


_MARKET_TABLES = ("trades_spec", "weekly_margin_interest", "daily_margin_interest", "short_selling",
                  "short_selling_positions", "announcement", "indices", "prices_am", "breakdown", "dividend")


def _market_table(market: SimMarket, source: str, query: dict[str, str], lo: dt.date | None, hi: dt.date | None,
                  code: str | None) -> pl.DataFrame:
    """The tables of `gogoku.sim.tables`: dates select the endpoint's date column; codes and sections filter."""
    if source == "trades_spec":
        return market.trades_spec(lo, hi, query.get("section") or None)
    if source == "short_selling":
        return market.short_selling(lo, hi, query.get("s33") or None)
    if source == "short_selling_positions":
        if query.get("disc_date"):
            lo = hi = parse_date("disc_date", query["disc_date"])
        if query.get("disc_date_from"):
            lo = parse_date("disc_date_from", query["disc_date_from"])
        if query.get("disc_date_to"):
            hi = parse_date("disc_date_to", query["disc_date_to"])
        calculated = parse_date("calc_date", query["calc_date"]) if query.get("calc_date") else None
        return market.short_selling_positions(lo, hi, code, calculated)
    if source == "announcement":
        return market.announcement(lo, hi)
    if source == "indices":
        # Index codes are 4 characters ("0000", "0040"): no stock-code padding.
        return market.indices(lo, hi, query["code"].strip() if query.get("code") else None)
    return getattr(market, source)(lo, hi, code)
