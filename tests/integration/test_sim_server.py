"""The simulator's HTTP surface, spoken to with plain urllib on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.market import SimMarket
from gogoku.sim.server import INVALID_KEY, SimServer

pytestmark = pytest.mark.integration

MARCH_1 = dt.date(2024, 3, 1)


def get(server: SimServer, path: str, params: dict[str, str] | None = None, key: str | None = "test-key",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of a GET; gzip bodies are decoded."""
    url = server.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(url, headers={**({"x-api-key": key} if key else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, hdrs = err.code, err.read(), dict(err.headers)
    if hdrs.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return status, json.loads(raw), hdrs


def post(server: SimServer, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(server.url + path, method="POST"), timeout=10) as resp:
        return json.load(resp)


def all_pages(server: SimServer, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    rows, pages, query = [], 0, dict(params)
    while True:
        status, body, _ = get(server, path, query)
        assert status == 200, body
        rows += body["data"]
        pages += 1
        if "pagination_key" not in body:
            return rows, pages
        query = {**params, "pagination_key": body["pagination_key"]}


def test_binds_loopback_with_an_ephemeral_port(sim_server: SimServer) -> None:
    assert sim_server.url.startswith("http://127.0.0.1:")
    assert int(sim_server.url.rsplit(":", 1)[1]) > 0


def test_api_key_is_required(sim_server_factory: Callable[..., SimServer]) -> None:
    open_server = sim_server_factory()
    status, body, _ = get(open_server, "/v2/equities/bars/daily", {"date": "2024-03-01"}, key=None)
    assert status == 403 and body == {"message": INVALID_KEY}
    assert get(open_server, "/v2/equities/bars/daily", {"date": "2024-03-01"}, key="anything")[0] == 200
    locked = sim_server_factory(api_key="secret")
    assert get(locked, "/v2/equities/bars/daily", {"date": "2024-03-01"}, key="wrong")[0] == 403
    assert get(locked, "/v2/equities/bars/daily", {"date": "2024-03-01"}, key="secret")[0] == 200


def test_missing_parameters_give_the_api_message(sim_server: SimServer) -> None:
    status, body, _ = get(sim_server, "/v2/equities/bars/daily", {"from": "2024-03-01", "to": "2024-03-05"})
    assert status == 400
    assert body == {"message": "This API requires at least 1 parameter as follows; date, code"}
    status, body, _ = get(sim_server, "/v2/fins/summary")
    assert status == 400 and "date, code" in body["message"]
    status, body, _ = get(sim_server, "/v2/equities/bars/daily", {"date": "2024-13-01"})
    assert status == 400 and "'date'" in body["message"]


def test_plan_gates_endpoints(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    standard = sim_server_factory(plan="standard")
    status, body, _ = get(standard, "/v2/derivatives/bars/daily/futures", {"date": "2024-03-01"})
    assert status == 403 and "premium" in body["message"]
    free = sim_server_factory(plan="free")
    status, body, _ = get(free, "/v2/indices/bars/daily/topix")
    assert status == 403 and "light" in body["message"]
    assert get(free, "/v2/equities/bars/daily", {"date": "2024-03-01"})[0] == 200
    premium = sim_server_factory(plan="premium")
    status, body, _ = get(premium, "/v2/derivatives/bars/daily/futures")
    assert status == 400 and body["message"].endswith("as follows; date")
    status, body, _ = get(premium, "/v2/derivatives/bars/daily/futures", {"date": "20240301"})
    assert status == 200 and len(body["data"]) == sim_market.futures(MARCH_1, MARCH_1).height > 0
    status, body, _ = get(premium, "/v2/derivatives/bars/daily/futures",
                          {"date": "20240301", "category": "TOPIXF", "contract_flag": "1"})
    assert [row["ProdCat"] for row in body["data"]] == ["TOPIXF"] and body["data"][0]["CCMFlag"] == "1"


def test_v2_field_names_and_wire_types(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan="premium")
    queries = {
        "listed_info": {"date": "2024-03-01"}, "trading_calendar": {"from": "2024-03-01", "to": "2024-03-10"},
        "daily_quotes": {"date": "2024-03-01"}, "topix": {"from": "2024-03-01", "to": "2024-03-10"},
        "statements": {"date": "2024-05-10"}, "futures": {"date": "2024-03-01"},
    }
    for source, params in queries.items():
        spec = ENDPOINTS[source]
        status, body, _ = get(server, spec.path("v2"), params)
        assert status == 200, (source, body)
        assert body["data"], source
        row = body["data"][0]
        assert list(row) == [f.v2 for f in spec.fields], source
        for f in spec.fields:
            expected = str if spec.strings_on_wire or f.kind.value != "number" else (float, type(None))
            assert isinstance(row[f.v2], expected), (source, f.v2, row[f.v2])
    _, bars, _ = get(server, "/v2/equities/bars/daily", {"date": "2024-03-01"})
    assert {"O", "H", "L", "C", "Vo", "AdjC", "AdjFactor", "UL"} <= set(bars["data"][0])
    _, fins, _ = get(server, "/v2/fins/summary", {"date": "2024-05-10"})
    assert any(r["NxtFYSt"] == "" for r in fins["data"])  # empty fields are "" in fins
    assert all(r["Sales"].isdigit() for r in fins["data"])


def test_queries_by_date_code_and_range(sim_server: SimServer, sim_market: SimMarket) -> None:
    listed = sim_market.daily_quotes(MARCH_1, MARCH_1)["Code"]
    code = listed[0]
    _, by_date, _ = get(sim_server, "/v2/equities/bars/daily", {"date": "20240301"})
    _, by_iso, _ = get(sim_server, "/v2/equities/bars/daily", {"date": "2024-03-01"})
    assert by_date == by_iso and [r["Code"] for r in by_date["data"]] == listed.to_list()
    _, by_code, _ = get(sim_server, "/v2/equities/bars/daily", {"code": code[:4], "from": "2024-03-01", "to": "2024-03-08"})
    assert {r["Code"] for r in by_code["data"]} == {code}
    assert [r["Date"] for r in by_code["data"]] == ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06",
                                                      "2024-03-07", "2024-03-08"]
    _, holiday, _ = get(sim_server, "/v2/equities/bars/daily", {"date": "2024-03-20"})
    assert holiday == {"data": []}
    _, cal, _ = get(sim_server, "/v2/markets/calendar", {"from": "2024-03-18", "to": "2024-03-24", "hol_div": "1"})
    assert [r["Date"] for r in cal["data"]] == ["2024-03-18", "2024-03-19", "2024-03-21", "2024-03-22"]


def test_pagination_returns_every_row_once(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    params = {"date": "2024-04-01"}
    small = sim_server_factory(page_size=7)
    big = sim_server_factory(page_size=5000)
    rows_small, pages = all_pages(small, "/v2/equities/bars/daily", params)
    rows_big, one = all_pages(big, "/v2/equities/bars/daily", params)
    rows = sim_market.daily_quotes(dt.date(2024, 4, 1), dt.date(2024, 4, 1)).height
    assert (pages, one) == (-(-rows // 7), 1) and len(rows_big) == rows
    assert rows_small == rows_big
    status, body, _ = get(small, "/v2/equities/bars/daily", {"date": "2024-04-02", "pagination_key": "bm9wZQ"})
    assert status == 400 and "pagination_key" in body["message"]
    # A key from one query does not continue another.
    _, first, _ = get(small, "/v2/equities/bars/daily", {"date": "2024-04-01"})
    status, _, _ = get(small, "/v2/equities/bars/daily", {"date": "2024-04-02", "pagination_key": first["pagination_key"]})
    assert status == 400


def test_gzip_when_accepted(sim_server: SimServer, sim_market: SimMarket) -> None:
    _, body, headers = get(sim_server, "/v2/equities/bars/daily", {"date": "2024-03-01"},
                           headers={"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert len(body["data"]) == sim_market.daily_quotes(MARCH_1, MARCH_1).height > 0
    _, _, plain = get(sim_server, "/v2/equities/bars/daily", {"date": "2024-03-01"})
    assert "Content-Encoding" not in plain


def test_stats_count_requests_per_path_and_reset(sim_server: SimServer) -> None:
    for day in ("2024-03-01", "2024-03-04"):
        get(sim_server, "/v2/equities/bars/daily", {"date": day})
    get(sim_server, "/v2/indices/bars/daily/topix")
    get(sim_server, "/v2/no/such/path")
    _, stats, _ = get(sim_server, "/__sim__/stats")
    assert stats["requests"] == {"/v2/equities/bars/daily": 2, "/v2/indices/bars/daily/topix": 1, "/v2/no/such/path": 1}
    assert stats["total"] == 4 and stats["statuses"] == {"200": 3, "403": 1}
    assert post(sim_server, "/__sim__/reset") == {"reset": True}
    assert get(sim_server, "/__sim__/stats")[1]["total"] == 0


def test_faults_are_seeded_and_mixed_over_the_kinds(sim_server_factory: Callable[..., SimServer]) -> None:
    days = [f"2024-04-{d:02d}" for d in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)]

    def outcomes(server: SimServer) -> list[str]:
        out = []
        for _ in range(4):
            for day in days:
                try:
                    out.append(str(get(server, "/v2/equities/bars/daily", {"date": day})[0]))
                except (OSError, http.client.HTTPException, ValueError) as exc:  # dropped or cut short
                    out.append(type(exc).__name__)
        return out

    first = outcomes(sim_server_factory(fault_rate=0.4, slow_ms=10))
    second_server = sim_server_factory(fault_rate=0.4, slow_ms=10)
    assert outcomes(second_server) == first  # the same URLs, visited in the same order, fail the same way
    faults = second_server.stats()["faults"]
    assert set(faults) == {"slow", "error", "reset", "truncate"}
    assert 0.2 < sum(faults.values()) / len(first) < 0.6
    assert {s for s in first if s.isdigit()} <= {"200", "500", "502", "503"}
    assert any(not s.isdigit() for s in first)


def test_latency_delays_each_request(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(latency_ms=150)
    t0 = time.perf_counter()
    assert get(server, "/v2/markets/calendar")[0] == 200
    assert time.perf_counter() - t0 >= 0.15
