"""Futures and Nikkei 225 options through the real simulator server: v2 names, plans, client frames."""

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

DAY = dt.date(2024, 3, 7)  # the March contracts' last trading day
OPTION_V2 = ["Date", "Code", "O", "H", "L", "C", "EO", "EH", "EL", "EC", "AO", "AH", "AL", "AC", "Vo", "OI", "Va",
             "CM", "Strike", "VoOA", "EmMrgnTrgDiv", "PCDiv", "LTD", "SQD", "Settle", "Theo", "BaseVol", "UnderPx",
             "IV", "IR"]
FUTURES_V2 = ["Date", "Code", "ProdCat", "O", "H", "L", "C", "MO", "MH", "ML", "MC", "EO", "EH", "EL", "EC", "AO",
              "AH", "AL", "AC", "Vo", "OI", "Va", "CM", "VoOA", "EmMrgnTrgDiv", "LTD", "SQD", "Settle", "CCMFlag"]


def get(server: SimServer, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = f"{server.url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"x-api-key": "test-key", "Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, gz = resp.status, resp.read(), resp.headers.get("Content-Encoding") == "gzip"
    except urllib.error.HTTPError as err:
        status, raw, gz = err.code, err.read(), err.headers.get("Content-Encoding") == "gzip"
    return status, json.loads(gzip.decompress(raw) if gz else raw)


def all_rows(server: SimServer, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    rows, query = [], dict(params)
    while True:
        status, body = get(server, path, query)
        assert status == 200, body
        rows += body["data"]
        if "pagination_key" not in body:
            return rows
        query = {**params, "pagination_key": body["pagination_key"]}


def client_fetch(server: SimServer, source: str, start: dt.date, end: dt.date, plan: str) -> pl.DataFrame:
    async def run() -> pl.DataFrame:
        async with JQuantsClient(server.url, api_key="test-key", plan=plan, backoff_base_s=0.01,
                                 rate_limit=server.state.rate_limit) as client:
            return await client.fetch(source, start, end)

    return asyncio.run(run())


def test_v2_futures_answer_with_v2_names_and_filters(sim_server_factory: Callable[..., SimServer],
                                                     sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=10)
    path = "/v2/derivatives/bars/daily/futures"
    rows = all_rows(server, path, {"date": DAY.strftime("%Y%m%d")})
    assert list(rows[0]) == FUTURES_V2
    assert len(rows) == sim_market.futures(DAY, DAY).height == 12
    assert {r["ProdCat"] for r in rows} == {"TOPIXF", "NK225F", "JN400F", "REITF"}
    march = [r for r in rows if r["CM"] == "2024-03"]
    assert {(r["LTD"], r["SQD"]) for r in march} == {("2024-03-07", "2024-03-08")}
    assert all(r["MO"] is None for r in rows)
    central = all_rows(server, path, {"date": DAY.isoformat(), "category": "NK225F", "contract_flag": "1"})
    assert len(central) == 1 and central[0]["CM"] == "2024-06"  # rolled to June before March expires
    status, body = get(sim_server_factory(plan="standard"), path, {"date": DAY.isoformat()})
    assert status == 403 and "premium" in body["message"]
    status, body = get(server, path, {})
    assert status == 400 and "date" in body["message"]


def test_v2_options_225_answer_with_v2_names(sim_server_factory: Callable[..., SimServer],
                                             sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="standard", page_size=200)
    path = "/v2/derivatives/bars/daily/options/225"
    rows = all_rows(server, path, {"date": DAY.isoformat()})
    assert list(rows[0]) == OPTION_V2
    expected = sim_market.index_option(DAY, DAY)
    assert len(rows) == expected.height > 100
    assert {r["PCDiv"] for r in rows} == {"1", "2"}
    assert all(r["Strike"] % 125 == 0 and r["IV"] > 0 for r in rows)
    assert [r["Code"] for r in rows] == expected["Code"].to_list()
    for plan in ("free", "light"):
        status, body = get(sim_server_factory(plan=plan), path, {"date": DAY.isoformat()})
        assert status == 403 and "standard" in body["message"]
    status, body = get(server, path, {"from": "2024-03-01", "to": "2024-03-07"})
    assert status == 400 and "date" in body["message"]


def test_client_fetches_typed_futures_and_index_options(sim_server_factory: Callable[..., SimServer],
                                                        sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=500)
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 12)
    futures = client_fetch(server, "futures", start, end, "premium")
    assert futures.schema == ENDPOINTS["futures"].schema
    assert_frame_equal(futures, sim_market.futures(start, end))
    options = client_fetch(server, "index_option", start, end, "premium")
    assert options.schema == ENDPOINTS["index_option"].schema
    assert_frame_equal(options, sim_market.index_option(start, end))
    assert options["Date"].n_unique() == 8 and options["StrikePrice"].dtype == pl.Float64


def test_derivatives_options_serve_the_nk225_series_with_filters(sim_server_factory: Callable[..., SimServer],
                                                                  sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="premium", page_size=300)
    path = "/v2/derivatives/bars/daily/options"
    rows = all_rows(server, path, {"date": DAY.isoformat()})
    assert list(rows[0]) == [f.v2 for f in ENDPOINTS["options"].fields]
    assert {r["ProdCat"] for r in rows} == {"NK225E"} and {r["CCMFlag"] for r in rows} == {"0", "1"}
    assert len(rows) == sim_market.index_option(DAY, DAY).height
    central = all_rows(server, path, {"date": DAY.isoformat(), "contract_flag": "1"})
    assert 0 < len(central) < len(rows) and len({r["CM"] for r in central}) == 1
    one = all_rows(server, path, {"date": DAY.isoformat(), "code": rows[0]["Code"]})
    assert [r["Code"] for r in one] == [rows[0]["Code"]]
    assert all_rows(server, path, {"date": DAY.isoformat(), "category": "TOPIXE"}) == []
    status, body = get(sim_server_factory(plan="standard"), path, {"date": DAY.isoformat()})
    assert status == 403 and "premium" in body["message"]
    typed = client_fetch(server, "options", DAY, DAY, "premium")
    assert_frame_equal(typed, sim_market.options(DAY, DAY))
