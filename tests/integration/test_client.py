"""The async client against the real simulator server: typed frames, paging, plans, retries, counts."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.config import Settings
from gogoku.errors import GogokuError, InputError
from gogoku.jquants.client import JQuantsClient, parse_page, query_plan, to_typed
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.local import fetch_sync, open_client
from gogoku.sim.market import SimMarket
from gogoku.sim.query import select_rows
from gogoku.sim.server import Faults, SimServer

pytestmark = pytest.mark.integration

D = dt.date
START, END = D(2024, 2, 1), D(2024, 4, 30)


def fetch(server: SimServer, source: str, start: dt.date = START, end: dt.date = END, **options: Any
          ) -> tuple[pl.DataFrame, JQuantsClient]:
    options = {"api_key": "test-key", "backoff_base_s": 0.01, "rate_limit": server.state.rate_limit, **options}

    async def run() -> tuple[pl.DataFrame, JQuantsClient]:
        async with JQuantsClient(server.url, **options) as client:
            return await client.fetch(source, start, end), client

    return asyncio.run(run())


def expected(market: SimMarket, source: str) -> pl.DataFrame:
    """What the client should return: the simulator's own selection for each query of the plan, sorted."""
    spec = ENDPOINTS[source]
    frames = [select_rows(market, spec, params) for params in query_plan(spec, START, END)]
    return pl.concat(frames).sort(list(spec.sort_by), maintain_order=True)


@pytest.mark.parametrize("source", list(ENDPOINTS))
def test_every_source_round_trips_typed_with_v1_names(
    source: str, sim_server_factory: Callable[..., SimServer], sim_market: SimMarket
) -> None:
    server = sim_server_factory(plan="premium", page_size=50)
    frame, client = fetch(server, source, plan="premium")
    spec = ENDPOINTS[source]
    assert frame.schema == spec.schema
    assert frame.height > 0
    assert_frame_equal(frame, expected(sim_market, source))
    assert client.api_calls == server.stats()["total"]
    assert dict(client.calls_by_path) == server.stats()["requests"]


def test_query_plans_per_axis() -> None:
    assert query_plan(ENDPOINTS["topix"], START, END) == [{"from": "2024-02-01", "to": "2024-04-30"}]
    days = query_plan(ENDPOINTS["daily_quotes"], D(2024, 3, 18), D(2024, 3, 24))
    assert [q["date"] for q in days] == ["2024-03-18", "2024-03-19", "2024-03-21", "2024-03-22"]
    snapshots = query_plan(ENDPOINTS["listed_info"], D(2024, 1, 13), D(2024, 4, 30))
    assert [q["date"] for q in snapshots] == ["2024-01-13", "2024-02-01", "2024-03-01", "2024-04-01"]


def test_pages_with_empty_number_fields_parse_as_nulls() -> None:
    spec = ENDPOINTS["futures"]
    row = {f.v2: ("2024-03-01" if f.kind.value == "date" else "x" if f.kind.value == "string" else 1.5)
           for f in spec.fields}
    body = json.dumps({"data": [row, {**row, "EO": "", "EH": "-"}], "pagination_key": "next"}).encode()
    page, key = parse_page(spec, body)
    assert key == "next"
    typed = to_typed(spec, page)
    assert typed.schema == spec.schema
    assert typed["NightSessionOpen"].to_list() == [1.5, None]
    assert typed["NightSessionHigh"].to_list() == [1.5, None]
    assert typed["LastTradingDay"].to_list() == [D(2024, 3, 1)] * 2
    empty, key = parse_page(spec, b'{"data": []}')
    assert empty.height == 0 and key is None


def test_small_pages_give_the_same_frame(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    one_page, one_client = fetch(sim_server_factory(page_size=5000), "daily_quotes")
    paged, paged_client = fetch(sim_server_factory(page_size=7), "daily_quotes")
    assert_frame_equal(paged, one_page)
    assert one_client.api_calls == 60  # business days Feb-Apr 2024
    per_day = sim_market.daily_quotes(START, END).group_by("Date").len()["len"].cast(pl.Int64)
    assert paged_client.api_calls == (-(-per_day // 7)).sum()  # each day's codes in pages of 7


def test_futures_need_premium(sim_server_factory: Callable[..., SimServer]) -> None:
    standard = sim_server_factory(plan="standard")
    with pytest.raises(GogokuError, match="403.*premium plan or higher"):
        fetch(standard, "futures", plan="premium")
    with pytest.raises(GogokuError, match="futures needs the J-Quants premium plan") as info:
        fetch(standard, "futures", plan="standard")
    assert "JQUANTS_PLAN_TIER" in str(info.value)
    frame, _ = fetch(sim_server_factory(plan="premium"), "futures", plan="premium")
    assert {"TOPIXF", "NK225F"} <= set(frame["DerivativesProductCategory"])


def test_bad_requests_raise_with_the_api_message(sim_server: SimServer) -> None:
    async def run() -> None:
        async with JQuantsClient(sim_server.url, api_key="test-key") as client:
            await client.query("daily_quotes", {"from": "2024-03-01"})

    with pytest.raises(GogokuError, match="400: This API requires at least 1 parameter as follows; date, code"):
        asyncio.run(run())
    with pytest.raises(InputError, match="end 2024-01-01 is before start"):
        fetch(sim_server, "topix", START, D(2024, 1, 1))
    with pytest.raises(InputError, match="source 'quotes' is unknown"):
        fetch(sim_server, "quotes")


def test_wrong_key_names_the_setting(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(api_key="secret")
    with pytest.raises(GogokuError, match="JQUANTS_API_KEY"):
        fetch(server, "topix", api_key="wrong")
    with pytest.raises(GogokuError, match="JQUANTS_API_KEY is not set"):
        JQuantsClient(server.url, api_key=None)


def test_retries_through_faults_give_the_fault_free_frame(sim_server_factory: Callable[..., SimServer]) -> None:
    clean, _ = fetch(sim_server_factory(page_size=11), "daily_quotes", START, D(2024, 2, 29))
    flaky = sim_server_factory(page_size=11, fault_rate=0.3, slow_ms=50)
    frame, client = fetch(flaky, "daily_quotes", START, D(2024, 2, 29), max_concurrency=16)
    assert_frame_equal(frame, clean)
    stats = flaky.stats()
    assert stats["statuses"]["200"] == 19 * 3  # 19 business days in Feb 2024, 3 pages each
    assert set(stats["faults"]) == {"slow", "error", "reset", "truncate"}
    # aiohttp itself resends a GET once when a pooled connection drops before the answer.
    assert 57 < client.api_calls <= stats["total"]


def test_a_page_that_keeps_failing_raises(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(faults=Faults(error=0.99))
    with pytest.raises(GogokuError, match=r"still failing after 3 attempts \(HTTP 50[023]"):
        fetch(server, "topix", max_retries=2)


def test_connection_errors_are_retried_then_raise(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory()
    server.stop()  # nothing listens on that port any more
    with pytest.raises(GogokuError, match="still failing after 3 attempts.*ClientConnectorError"):
        fetch(server, "topix", max_retries=2)


def test_progress_is_logged(sim_server: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gogoku.jquants.client"):
        fetch(sim_server, "daily_quotes")
    progress = [r.getMessage() for r in caplog.records if "requests done" in r.getMessage()]
    assert len(progress) == 10 and progress[-1].startswith("daily_quotes: 60/60 requests done (100%)")


def test_sessions_start_the_builtin_simulator_when_no_url_is_set(tmp_path) -> None:
    settings = dataclasses.replace(
        Settings.from_env({"GOGOKU_DATA_ROOT": str(tmp_path)}), sim_stocks=12, sim_seed=5, plan_tier="light"
    )
    assert settings.api_url is None
    frame, stats = fetch_sync(settings, "topix", D(2024, 3, 1), D(2024, 3, 31))
    assert frame.height == 20 and stats["api_calls"] == 1 and stats["rows"] == 20
    assert stats["calls_by_path"] == {"/v2/indices/bars/daily/topix": 1}
    expected_topix = SimMarket(seed=5, n_stocks=12).topix(D(2024, 3, 1), D(2024, 3, 31))
    assert_frame_equal(frame, expected_topix)

    async def through_open_client() -> str:
        async with open_client(settings) as client:
            url = client.base_url
            assert (await client.fetch("listed_info", D(2024, 3, 1), D(2024, 3, 1))).height == 12
        return url

    url = asyncio.run(through_open_client())
    assert url.startswith("http://127.0.0.1:")
