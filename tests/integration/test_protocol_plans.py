"""Plans as the API applies them: endpoints (403), date windows (400), requests per window (429), and
oversized results (413) that the client splits; the axis (by date or by code) the client picks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.errors import GogokuError
from gogoku.jquants.client import JQuantsClient, query_plan, split_range
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.jquants.ratelimit import RateLimit
from gogoku.sim.market import SimMarket
from gogoku.sim.server import RATE_LIMITED, TOO_LARGE, SimServer

pytestmark = pytest.mark.integration

D = dt.date


def get(server: SimServer, path: str, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    url = server.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(url, headers={"x-api-key": "k"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err), dict(err.headers)


def fetch(server: SimServer, source: str, start: dt.date, end: dt.date, codes: list[str] | None = None,
          **options: Any) -> tuple[pl.DataFrame, JQuantsClient]:
    options = {"api_key": "k", "backoff_base_s": 0.01, "plan": server.state.plan,
               "rate_limit": server.state.rate_limit, **options}

    async def run() -> tuple[pl.DataFrame, JQuantsClient]:
        async with JQuantsClient(server.url, **options) as client:
            return await client.fetch(source, start, end, codes), client

    return asyncio.run(run())


# The conftest market ends 2024-06-28: "today" for the plan windows unless a test sets another.
@pytest.mark.parametrize(("plan", "first", "last"), [
    ("free", "2022-04-05", "2024-04-05"),  # 12 weeks before today, back 2 years
    ("light", "2019-06-28", "2024-06-28"),
    ("standard", "2014-06-28", "2024-06-28"),
    ("premium", "2004-06-28", "2024-06-28"),
])
def test_each_plan_answers_400_outside_its_window(plan: str, first: str, last: str,
                                                  sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan=plan)
    day_before = (D.fromisoformat(first) - dt.timedelta(days=1)).isoformat()
    status, body, _ = get(server, "/v2/equities/bars/daily", {"code": "1301", "from": day_before, "to": last})
    assert status == 400
    assert body["message"].startswith(f"Your subscription covers the following dates: {first} ~ {last}. ")
    assert get(server, "/v2/equities/bars/daily", {"date": "2024-04-05"})[0] == 200
    status, _, _ = get(server, "/v2/equities/bars/daily", {"date": "2024-04-08"})  # after free's last day
    assert status == (400 if plan == "free" else 200)
    # The calendar is public ahead of time: no window.
    assert get(server, "/v2/markets/calendar", {"from": "2000-01-04", "to": "2000-01-31"})[0] == 200


def test_premium_on_v1_has_no_lower_bound_and_today_is_configurable(sim_server_factory: Callable[..., SimServer],
                                                                    sim_market: SimMarket) -> None:
    server = sim_server_factory(plan="free", today=D(2024, 9, 27))  # free's last day: 2024-07-05
    assert get(server, "/v2/equities/bars/daily", {"date": "2024-06-28"})[0] == 200
    status, body, _ = get(server, "/v2/equities/bars/daily", {"date": "2022-07-01"})
    assert status == 400 and "2022-07-05 ~ 2024-07-05" in body["message"]
    premium = sim_server_factory(plan="premium", today=D(2044, 6, 28))
    status, body, _ = get(premium, "/v2/equities/bars/daily", {"date": "2024-03-01"})
    assert status == 400 and "2024-06-28 ~ 2044-06-28" in body["message"]
    token_server = sim_server_factory(plan="premium", today=D(2044, 6, 28))

    async def v1() -> pl.DataFrame:
        async with JQuantsClient(token_server.url, version="v1", mailaddress="a@b.c", password="p", plan="premium",
                                 rate_limit=token_server.state.rate_limit) as client:
            return await client.fetch("daily_quotes", D(2024, 3, 1), D(2024, 3, 1))

    assert asyncio.run(v1()).height == sim_market.daily_quotes(D(2024, 3, 1), D(2024, 3, 1)).height > 0


def test_client_errors_say_what_to_change(sim_server_factory: Callable[..., SimServer]) -> None:
    free = sim_server_factory(plan="free")
    with pytest.raises(GogokuError, match=r"answered 400: Your subscription covers the following dates: "
                                          r"2022-04-05 ~ 2024-04-05\..*outside the free plan's window: move the start"):
        fetch(free, "daily_quotes", D(2024, 4, 1), D(2024, 4, 12))
    with pytest.raises(GogokuError, match="topix needs the J-Quants light plan or higher but JQUANTS_PLAN_TIER is free"):
        fetch(free, "topix", D(2024, 3, 1), D(2024, 3, 29))
    with pytest.raises(GogokuError, match=r"answered 403: .*requires the light plan.*raise the plan or leave topix out"):
        fetch(free, "topix", D(2024, 3, 1), D(2024, 3, 29), plan="light")


@pytest.mark.parametrize(("plan", "allowed"), [
    ("free", {"daily_quotes", "listed_info", "statements", "trading_calendar"}),
    ("light", {"daily_quotes", "listed_info", "statements", "trading_calendar", "topix"}),
    ("premium", set(ENDPOINTS)),
])
def test_each_plan_answers_403_outside_its_endpoints(plan: str, allowed: set[str],
                                                     sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan=plan, rate_limits=False)
    for source, spec in ENDPOINTS.items():
        status, body, _ = get(server, spec.path("v2"), {"date": "2024-03-01"})
        if source in allowed or plan in spec.plans:
            assert status != 403, (source, body)
        else:
            assert status == 403, source
            assert body["message"].startswith(f"This API is not available on your subscription plan ({plan}).")


def test_429_with_retry_after_beyond_the_plans_rate(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan="free", rate_window_s=2.0)  # 5 requests per 2 s
    answers = [get(server, "/v2/equities/bars/daily", {"date": "2024-03-01"}) for _ in range(7)]
    assert [a[0] for a in answers] == [200] * 5 + [429] * 2
    assert answers[5][1] == {"message": RATE_LIMITED} and answers[5][2]["Retry-After"] in ("1", "2")
    other = sim_server_factory(plan="free", rate_limit=8, rate_window_s=2.0)
    assert [get(other, "/v2/markets/calendar")[0] for _ in range(9)] == [200] * 8 + [429]
    unlimited = sim_server_factory(plan="free", rate_limits=False)
    assert {get(unlimited, "/v2/markets/calendar")[0] for _ in range(12)} == {200}


def test_client_within_its_plans_rate_sees_no_429(sim_server_factory: Callable[..., SimServer],
                                                  sim_market: SimMarket) -> None:
    # light: 60 requests per 0.5 s here; 79 business-day queries need more than one window.
    server = sim_server_factory(plan="light", rate_window_s=0.5)
    t0 = time.perf_counter()
    frame, client = fetch(server, "daily_quotes", D(2024, 1, 4), D(2024, 4, 30), max_concurrency=32)
    elapsed = time.perf_counter() - t0
    stats = server.stats()
    assert frame.height == sim_market.daily_quotes(D(2024, 1, 4), D(2024, 4, 30)).height
    assert client.api_calls == stats["total"] == 79
    assert stats["statuses"] == {"200": 79}
    assert elapsed > 0.5  # the bucket held requests back: 79 > 60 per window
    # A client that ignores the plan (10x its rate) meets 429s, and retries through them.
    greedy_server = sim_server_factory(plan="light", rate_window_s=0.5)
    greedy, greedy_client = fetch(greedy_server, "daily_quotes", D(2024, 1, 4), D(2024, 4, 30), max_concurrency=32,
                                  rate_limit=RateLimit(600, 0.5))
    assert greedy_server.stats()["statuses"].get("429", 0) > 0
    assert_frame_equal(greedy, frame)


def test_413_splits_the_date_range(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    server = sim_server_factory(max_rows=60)
    status, body, _ = get(server, "/v2/indices/bars/daily/topix", {"from": "2024-01-04", "to": "2024-06-28"})
    assert (status, body) == (413, {"message": TOO_LARGE})
    frame, client = fetch(server, "topix", D(2024, 1, 4), D(2024, 6, 28))
    assert_frame_equal(frame, sim_market.topix(D(2024, 1, 4), D(2024, 6, 28)))
    # 120 rows: the probe above and the client's first query answer 413; Jan 4..Apr 1 (59 rows) passes,
    # Apr 2..Jun 28 (61 rows) answers 413 and splits into Apr 2..May 15 and May 16..Jun 28.
    assert server.stats()["statuses"] == {"413": 3, "200": 3}
    assert client.api_calls == 5
    assert split_range({"from": "2024-01-01", "to": "2024-01-04"}) == (
        {"from": "2024-01-01", "to": "2024-01-02"}, {"from": "2024-01-03", "to": "2024-01-04"})
    assert split_range({"date": "2024-01-04"}) is None
    # A by-date query cannot be split: the error names it.
    tiny = sim_server_factory(max_rows=10)
    with pytest.raises(GogokuError, match=r"413: Response data is too large.*query \{'date': '2024-03-01'\} of "
                                          r"daily_quotes covers a single date"):
        fetch(tiny, "daily_quotes", D(2024, 3, 1), D(2024, 3, 1))


def test_axis_choice_by_date_or_by_code(sim_server_factory: Callable[..., SimServer], sim_market: SimMarket) -> None:
    spec = ENDPOINTS["daily_quotes"]
    codes = sim_market.universe.codes
    days = query_plan(spec, D(2024, 1, 4), D(2024, 6, 28))
    assert len(days) == 120 and days[0] == {"date": "2024-01-04"}  # 120 JPX business days
    assert query_plan(spec, D(2024, 1, 4), D(2024, 6, 28), codes[:20]) == [
        {"code": c, "from": "2024-01-04", "to": "2024-06-28"} for c in codes[:20]]
    assert len(query_plan(spec, D(2024, 3, 1), D(2024, 3, 29), codes[:25])) == 20  # 20 days < 25 codes
    # statements take a code without a range: the code's whole history, cut to [start, end] by the client.
    assert query_plan(ENDPOINTS["statements"], D(2024, 1, 4), D(2024, 6, 28), ["13010"]) == [{"code": "13010"}]

    server = sim_server_factory(page_size=500)
    picked = [codes[3], codes[7][:4]]  # 4-digit codes name the common stock
    by_code, client = fetch(server, "daily_quotes", D(2024, 1, 4), D(2024, 6, 28), picked)
    assert client.api_calls == 2
    everything, _ = fetch(server, "daily_quotes", D(2024, 1, 4), D(2024, 6, 28))
    assert_frame_equal(by_code, everything.filter(pl.col("Code").is_in([codes[3], codes[7]])))
    statements, client = fetch(server, "statements", D(2024, 2, 1), D(2024, 5, 31), picked)
    assert client.api_calls == 2 and statements.height > 0
    expected = sim_market.statements(D(2024, 2, 1), D(2024, 5, 31)).filter(pl.col("LocalCode").is_in([codes[3], codes[7]]))
    assert_frame_equal(statements, expected.sort(["DisclosedDate", "DisclosedTime", "LocalCode"], maintain_order=True))
    by_date, client = fetch(server, "daily_quotes", D(2024, 3, 1), D(2024, 3, 8), codes[:10])
    assert client.api_calls == 6
    assert_frame_equal(by_date, everything.filter(pl.col("Code").is_in(codes[:10]), pl.col("Date") <= D(2024, 3, 8),
                                                  pl.col("Date") >= D(2024, 3, 1)))
