"""Every endpoint the simulator serves answers with the fields the J-Quants documentation lists
(`gogoku.jquants.v2_fields`), with their JSON types; v1 answers carry the v1 names; the client's
normalization gives each field its v1 column."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
import pytest

from gogoku.jquants.client import parse_page, to_typed
from gogoku.jquants.endpoints import ENDPOINTS, Axis, Endpoint, Kind
from gogoku.jquants.v2_fields import (
    NUMBER,
    OBJECT,
    PREMIUM_ONLY,
    STRING,
    V1_STATEMENTS_FIELDS,
    V2_FIELDS,
    V2_OBJECT_MEMBERS,
)
from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer, run_in_thread

pytestmark = pytest.mark.integration

START, END = dt.date(2024, 2, 1), dt.date(2024, 6, 28)
DAYS_PER_SOURCE = 4  # business-day sources: this many days spread over the span (statements: every day)
JSON_TYPES = {STRING: str, NUMBER: (int, float), OBJECT: dict}
# fins/summary lines every simulated issuer reports on some statement (the others, e.g. REIT distributions
# and non-consolidated forecasts, are "" for consolidated issuers, as on the real API).
SUMMARY_FILLED = ("DEPS", "CFO", "CFI", "CFF", "CashEq", "Div2Q", "DivFY", "DivAnn", "DivTotalAnn", "PayoutRatioAnn",
                  "FDiv2Q", "FDivFY", "FDivAnn", "FPayoutRatioAnn", "NxFDiv2Q", "NxFDivFY", "NxFDivAnn",
                  "NxFPayoutRatioAnn", "FSales2Q", "FOP2Q", "FNP2Q", "FEPS2Q", "NxFSales2Q", "NxFOP2Q", "NxFNp2Q",
                  "NxFEPS2Q", "MatChgSub", "ChgByASRev", "ChgNoASRev", "ChgAcEst", "RetroRst", "NCSales",
                  "NCOP", "NCOdP", "NCNP", "NCEPS", "NCTA", "NCEq", "NCEqAR", "NCBPS", "ShEq", "NCShEq", "ROE", "NCROE")


def get(server: SimServer, path: str, params: dict[str, str], headers: dict[str, str] | None = None
        ) -> tuple[int, bytes]:
    url = server.url + path + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"x-api-key": "any-key", "Accept-Encoding": "gzip", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, encoding = resp.status, resp.read(), resp.headers.get("Content-Encoding")
    except urllib.error.HTTPError as err:
        status, raw, encoding = err.code, err.read(), err.headers.get("Content-Encoding")
    return status, gzip.decompress(raw) if encoding == "gzip" else raw


def queries(market: SimMarket, spec: Endpoint) -> list[dict[str, str]]:
    """Queries the real API accepts, covering the span: one range, or days that have rows."""
    if spec.axis is Axis.RANGE:
        first, last = spec.range_params
        return [{first: START.isoformat(), last: END.isoformat()}]
    if spec.source == "listed_info":
        return [{"date": START.isoformat()}]
    days = getattr(market, spec.source)(START, END)[spec.date_column].unique().sort()
    if spec.source != "statements":  # statements: every disclosure day (FY, quarters and revisions)
        days = days.gather([round(k * (days.len() - 1) / (DAYS_PER_SOURCE - 1)) for k in range(DAYS_PER_SOURCE)])
    return [{"date": d.isoformat()} for d in days]


def pages(server: SimServer, spec: Endpoint, params: dict[str, str], version: str = "v2",
          headers: dict[str, str] | None = None) -> Iterator[bytes]:
    """Every page body of one query."""
    query = dict(params)
    while True:
        status, body = get(server, spec.path(version), query, headers)
        assert status == 200, (spec.path(version), params, body[:300])
        yield body
        key = json.loads(body).get("pagination_key")
        if not key:
            return
        query = {**params, "pagination_key": key}


def rows_of(server: SimServer, market: SimMarket, spec: Endpoint, version: str = "v2",
            headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    rename = spec.v1_params if version == "v1" else {}
    rows = [row for params in queries(market, spec)
            for body in pages(server, spec, {rename.get(k, k): v for k, v in params.items()}, version, headers)
            for row in json.loads(body)[spec.data_key(version)]]
    assert rows, spec.source
    return rows


@pytest.fixture(scope="module")
def premium(sim_market: SimMarket) -> Iterator[SimServer]:
    with run_in_thread(sim_market, plan="premium", page_size=2000, rate_window_s=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def v1_auth(premium: SimServer) -> dict[str, str]:
    """The v1 sign-in: mail address and password -> refresh token -> id token."""
    def post(path: str, payload: dict[str, str] | None = None) -> dict[str, str]:
        request = urllib.request.Request(premium.url + path, method="POST",
                                         data=json.dumps(payload).encode() if payload else None)
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())

    refresh = post("/v1/token/auth_user", {"mailaddress": "a@example.com", "password": "p"})["refreshToken"]
    token = post("/v1/token/auth_refresh?refreshtoken=" + urllib.parse.quote(refresh))["idToken"]
    return {"Authorization": f"Bearer {token}"}


def test_the_table_lists_every_documented_field() -> None:
    """The endpoint table and the documented data agree, so the server and the client cover every field."""
    assert {spec.v2_path for spec in ENDPOINTS.values()} == set(V2_FIELDS)
    for spec in ENDPOINTS.values():
        documented = V2_FIELDS[spec.v2_path]
        names = [f.v2.split(".")[0] for f in spec.fields]
        assert set(names) == set(documented), spec.source
        assert len(spec.schema) == len(spec.fields)  # one v1 column per field
        members = V2_OBJECT_MEMBERS.get(spec.v2_path, {})
        for parent, children in members.items():
            assert [f.v2.split(".")[1] for f in spec.fields if f.v2.startswith(parent + ".")] == list(children)
        # Kinds agree with the JSON types: numbers are numbers (strings in fins), everything else a string.
        for f in spec.fields:
            kind = documented[f.v2.split(".")[0]]
            expected = OBJECT if "." in f.v2 else NUMBER if f.kind is Kind.NUMBER and not spec.strings_on_wire else STRING
            assert kind == expected, (spec.source, f.v2)


@pytest.mark.parametrize("source", list(ENDPOINTS))
def test_v2_answers_carry_every_documented_field_with_its_json_type(
        source: str, premium: SimServer, sim_market: SimMarket) -> None:
    spec = ENDPOINTS[source]
    documented = V2_FIELDS[spec.v2_path]
    rows = rows_of(premium, sim_market, spec)
    for row in rows:
        assert set(row) == set(documented), (source, set(row) ^ set(documented))
    for name, kind in documented.items():
        values = [row[name] for row in rows]
        if spec.strings_on_wire:
            assert all(isinstance(v, str) for v in values), (source, name)  # "" when empty, never null
        else:
            assert all(v is None or isinstance(v, JSON_TYPES[kind]) for v in values), (source, name)
            assert all(not isinstance(v, bool) for v in values), (source, name)
        if kind == NUMBER and not spec.strings_on_wire:
            assert all(v is None or v == v for v in values)  # no NaN on the wire
    for parent, children in V2_OBJECT_MEMBERS.get(spec.v2_path, {}).items():
        assert all(list(row[parent]) == list(children) for row in rows), source
        assert {v for row in rows for v in row[parent].values()} <= {"0", "1"}
    if source == "statements":
        filled = {name for row in rows for name in SUMMARY_FILLED if row[name] != ""}
        assert filled == set(SUMMARY_FILLED), set(SUMMARY_FILLED) - filled
        assert all(float(row["EPS"]) >= float(row["DEPS"]) for row in rows if row["DEPS"])
    if source == "daily_quotes":  # Premium: the morning and afternoon sessions
        assert all(row[name] is not None for row in rows for name in PREMIUM_ONLY[spec.v2_path])
        assert all(max(row["MH"], row["AH"]) == row["H"] and min(row["ML"], row["AL"]) == row["L"]
                   and row["MVo"] + row["AVo"] == row["Vo"] and row["AC"] == row["C"] for row in rows)
    if source == "listed_info":
        assert {row["ProdCat"] for row in rows} == {"011"}


def test_non_premium_daily_bars_leave_out_the_sessions(sim_server_factory: Callable[..., SimServer],
                                                      sim_market: SimMarket) -> None:
    spec = ENDPOINTS["daily_quotes"]
    documented = set(V2_FIELDS[spec.v2_path])
    server = sim_server_factory(plan="standard", page_size=5000)
    status, body = get(server, spec.path("v2"), {"date": "2024-03-01"})
    assert status == 200
    rows = json.loads(body)["data"]
    assert rows and all(set(row) == documented - PREMIUM_ONLY[spec.v2_path] for row in rows)
    typed = to_typed(spec, parse_page(spec, body)[0])
    assert typed.schema == spec.schema
    assert all(typed[f.v1].null_count() == typed.height for f in spec.fields if f.plans is not None)


@pytest.mark.parametrize("source", list(ENDPOINTS))
def test_v1_answers_carry_the_v1_names(source: str, premium: SimServer, sim_market: SimMarket,
                                      v1_auth: dict[str, str]) -> None:
    spec = ENDPOINTS[source]
    rows = rows_of(premium, sim_market, spec, "v1", v1_auth)
    expected = list(dict.fromkeys(f.wire("v1").split(".")[0] for f in spec.fields if f.in_v1))
    assert all(list(row) == expected for row in rows), source
    v2_only = {f.v2 for f in spec.fields if not f.in_v1} | {f.v1 for f in spec.fields if not f.in_v1}
    assert not v2_only & set(rows[0]), source
    if source == "statements":
        assert expected == list(V1_STATEMENTS_FIELDS)


@pytest.mark.parametrize("source", list(ENDPOINTS))
def test_the_client_normalizes_every_field_to_its_v1_column(source: str, premium: SimServer,
                                                            sim_market: SimMarket) -> None:
    """parse_page + to_typed: each documented v2 field lands in its v1 column, typed, with its value."""
    spec = ENDPOINTS[source]
    body = next(pages(premium, spec, queries(market=sim_market, spec=spec)[0]))
    typed = to_typed(spec, parse_page(spec, body)[0])
    assert typed.schema == spec.schema
    assert typed.height > 0
    rows = json.loads(body)["data"]
    column = {f.v2: f.v1 for f in spec.fields}
    dtype = {Kind.DATE: pl.Date, Kind.NUMBER: pl.Float64, Kind.STRING: pl.Utf8}
    for name in V2_FIELDS[spec.v2_path]:
        for wire_name in [n for n in column if n.split(".")[0] == name]:
            f = next(f for f in spec.fields if f.v2 == wire_name)
            assert typed.schema[f.v1] == dtype[f.kind]
            parent, _, child = wire_name.partition(".")
            sent = [row[parent][child] if child else row[parent] for row in rows]
            got = typed[f.v1].to_list()
            for raw, value in zip(sent, got, strict=True):
                if raw is None or (raw == "" and f.kind is not Kind.STRING):
                    assert value is None, (source, wire_name)
                elif f.kind is Kind.NUMBER:
                    assert value == float(raw), (source, wire_name)
                elif f.kind is Kind.DATE:
                    assert value == dt.date.fromisoformat(raw), (source, wire_name)
                else:
                    assert value == raw, (source, wire_name)


def test_margin_interest_values_and_publication_date_from_the_2026_revision() -> None:
    """PubDate and the yen balances are null before 2026-09-25 applications and filled from then on."""
    market = SimMarket(seed=5, n_stocks=12, start=dt.date(2026, 8, 3), end=dt.date(2026, 11, 27))
    spec = ENDPOINTS["weekly_margin_interest"]
    new = ("PubDate", "ShrtVal", "LongVal", "ShrtNegVal", "LongNegVal", "ShrtStdVal", "LongStdVal")
    with run_in_thread(market, plan="premium", page_size=5000, rate_window_s=0.05) as server:
        status, body = get(server, spec.path("v2"), {"from": "2026-08-03", "to": "2026-11-27"})
    assert status == 200
    rows = json.loads(body)["data"]
    before = [r for r in rows if r["Date"] < "2026-09-25"]
    after = [r for r in rows if r["Date"] >= "2026-09-25"]
    assert before and after
    assert all(r[name] is None for r in before for name in new)
    assert all(r[name] is not None for r in after for name in new)
    assert all(r["PubDate"] > r["Date"] and r["LongVal"] >= r["LongVol"] * 0.9 for r in after)


def test_summaries_switch_to_the_scope_of_consolidation_flag_on_2024_07_22() -> None:
    """The quarterly-disclosure reform: SigChgInC replaces MatChgSub in statements from 2024-07-22."""
    market = SimMarket(seed=5, n_stocks=40, start=dt.date(2024, 4, 1), end=dt.date(2024, 9, 30))
    actual = market.statements().filter(pl.col("TypeOfDocument").str.contains("FinancialStatements"))
    old = actual.filter(pl.col("DisclosedDate") < dt.date(2024, 7, 22))
    new = actual.filter(pl.col("DisclosedDate") >= dt.date(2024, 7, 22))
    assert old.height and new.height
    assert set(old["MaterialChangesInSubsidiaries"]) <= {"true", "false"} and set(
        old["SignificantChangesInTheScopeOfConsolidation"]) == {""}
    assert set(new["SignificantChangesInTheScopeOfConsolidation"]) <= {"true", "false"} and set(
        new["MaterialChangesInSubsidiaries"]) == {""}
