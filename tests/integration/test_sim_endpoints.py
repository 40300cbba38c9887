"""The simulator's market-data endpoints through the real server: v2 names on the wire, typed frames from
the client, plans, and the endpoints' own parameters."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer

pytestmark = pytest.mark.integration

START, END = dt.date(2024, 2, 1), dt.date(2024, 3, 15)
NEW_SOURCES = ("trades_spec", "weekly_margin_interest", "daily_margin_interest", "short_selling",
               "short_selling_positions", "announcement", "indices", "prices_am", "breakdown", "dividend")


def get(server: SimServer, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = server.url + path + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"x-api-key": "any-key", "Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, encoding = resp.status, resp.read(), resp.headers.get("Content-Encoding")
    except urllib.error.HTTPError as err:
        status, raw, encoding = err.code, err.read(), err.headers.get("Content-Encoding")
    return status, json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)


def fetch(server: SimServer, source: str, plan: str = "premium") -> pl.DataFrame:
    async def run() -> pl.DataFrame:
        async with JQuantsClient(server.url, api_key="any-key", plan=plan, backoff_base_s=0.01) as client:
            return await client.fetch(source, START, END)

    return asyncio.run(run())


def one_day_params(market: SimMarket, source: str) -> dict[str, str]:
    """A query the real API accepts for each source: a range, or a day that has rows."""
    spec = ENDPOINTS[source]
    if spec.axis.value == "range":
        return {"from": START.isoformat(), "to": END.isoformat()}
    return {"date": getattr(market, source)(START, END)[spec.date_column][0].isoformat()}


@pytest.mark.parametrize("source", NEW_SOURCES)
def test_each_endpoint_answers_with_v2_names(source: str, sim_server_factory: Callable[..., SimServer],
                                             sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=500)
    spec = ENDPOINTS[source]
    status, body = get(server, spec.path("v2"), one_day_params(sim_market, source))
    assert status == 200, body
    assert body["data"], f"{source}: no rows"
    # "Parent.Child" fields travel as one nested object "Parent", as the real API sends PubReason.
    assert list(body["data"][0]) == list(dict.fromkeys(f.v2.split(".")[0] for f in spec.fields))


@pytest.mark.parametrize("source", NEW_SOURCES)
def test_client_fetch_returns_the_typed_table(source: str, sim_server_factory: Callable[..., SimServer],
                                              sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=200)
    frame = fetch(server, source)
    spec = ENDPOINTS[source]
    assert frame.schema == spec.schema
    expected = getattr(sim_market, source)(START, END).sort(list(spec.sort_by), maintain_order=True)
    assert frame.height > 0
    assert_frame_equal(frame, expected)


def test_daily_margin_flags_travel_nested_and_missing_numbers_are_null(
        sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=1000)  # premium: the client's rate pacing is quickest
    rows = sim_market.daily_margin_interest(START, END)
    day = rows.filter(pl.col("DailyChangeLongMarginOutstanding").is_null())["PublishedDate"][0]
    status, body = get(server, "/v2/markets/margin-alert", {"date": day.isoformat()})
    assert status == 200
    first_days = [r for r in body["data"] if r["LongOutChg"] is None]
    assert first_days and all(r["PubReason"]["DailyPublication"] == "1" for r in body["data"])
    assert {r["PubReason"]["Restricted"] for r in body["data"]} <= {"0", "1"}
    typed = fetch(server, "daily_margin_interest")
    assert typed.schema["DailyChangeLongMarginOutstanding"] == pl.Float64
    assert typed["DailyChangeLongMarginOutstanding"].null_count() > 0


def test_endpoint_parameters_filter(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="standard", page_size=5000)
    status, body = get(server, "/v2/equities/investor-types", {"section": "TSEPrime", "from": "2024-02-01",
                                                                "to": "2024-03-15"})
    assert status == 200 and {r["Section"] for r in body["data"]} == {"TSEPrime"}
    assert all(dt.date.fromisoformat(r["PubDate"]).weekday() in (3, 4) for r in body["data"])
    status, body = get(server, "/v2/markets/short-ratio", {"s33": "3650", "date": "2024-03-08"})
    assert status == 200 and {r["S33"] for r in body["data"]} <= {"3650"}
    prime_sector = int(sim_market.universe.sector[sim_market.universe.market == "0111"][0])
    sector = f"{0x40 + prime_sector:04X}"  # a sector index with TOPIX constituents
    status, body = get(server, "/v2/indices/bars/daily", {"code": sector, "from": "2024-02-01", "to": "2024-02-29"})
    assert status == 200 and {r["Code"] for r in body["data"]} == {sector} and len(body["data"]) == 19
    assert len({r["C"] for r in body["data"]}) > 10
    report = sim_market.short_selling_positions(START, END)
    calc = report["CalculatedDate"][0]
    status, body = get(server, "/v2/markets/short-sale-report", {"calc_date": calc.isoformat()})
    assert status == 200 and {r["CalcDate"] for r in body["data"]} == {calc.isoformat()}
    code = sim_market.weekly_margin_interest(START, END)["Code"][0]
    status, body = get(server, "/v2/markets/margin-interest", {"code": code[:4]})
    assert status == 200 and {r["Code"] for r in body["data"]} == {code}
    status, body = get(server, "/v2/markets/margin-alert", {})
    assert status == 400 and "date" in body["message"]


def test_plans_gate_the_new_endpoints(sim_server_factory: Callable[..., SimServer]) -> None:
    light = sim_server_factory(plan="light")
    standard = sim_server_factory(plan="standard")
    assert get(light, "/v2/equities/investor-types", {"from": "2024-03-01", "to": "2024-03-15"})[0] == 200
    assert get(light, "/v2/markets/margin-interest", {"date": "2024-03-08"})[0] == 403
    assert get(standard, "/v2/markets/margin-interest", {"date": "2024-03-08"})[0] == 200
    for path in ("/v2/equities/bars/daily/am", "/v2/markets/breakdown", "/v2/fins/dividend"):
        assert get(standard, path, {"date": "2024-03-08"})[0] == 403


def test_real_wire_sentinels_type_as_null_numbers() -> None:
    """The real API sends "-" (no previous day) and "*" (ratio not computed) in daily-margin numbers."""
    from gogoku.jquants.client import parse_page, to_typed

    spec = ENDPOINTS["daily_margin_interest"]
    row: dict = {}
    for f in spec.fields:
        value = "2024-03-08" if f.kind.value == "date" else "1" if f.kind.value == "string" else 1200.0
        parent, _, child = f.v2.partition(".")
        if child:
            row.setdefault(parent, {})[child] = value
        else:
            row[f.v2] = value
    body = json.dumps({"data": [row, {**row, "LongOutChg": "-", "ShrtOutRatio": "*", "SLRatio": ""}]}).encode()
    page, key = parse_page(spec, body)
    typed = to_typed(spec, page)
    assert key is None and typed.schema == spec.schema
    assert typed["DailyChangeLongMarginOutstanding"].to_list() == [1200.0, None]
    assert typed["ShortMarginOutstandingListedShareRatio"].to_list() == [1200.0, None]
    assert typed["ShortLongRatio"].to_list() == [1200.0, None]
    assert typed["PublishReason_Restricted"].to_list() == ["1", "1"]
