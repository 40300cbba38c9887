"""Authentication on both API versions: v1 tokens (sign-in, expiry, refresh, re-sign-in) and v2 keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.errors import GogokuError
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.endpoints import ENDPOINTS, Axis
from gogoku.sim.server import BAD_CREDENTIALS, INVALID_KEY, INVALID_TOKEN, SimServer

pytestmark = pytest.mark.integration

D = dt.date
MAIL, PASSWORD = "quant@example.com", "s3cret"


def call(server: SimServer, method: str, path: str, params: dict[str, str] | None = None,
         body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    url = server.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def sign_in(server: SimServer, mail: str = MAIL, password: str = PASSWORD) -> str:
    status, body = call(server, "POST", "/v1/token/auth_user", body={"mailaddress": mail, "password": password})
    assert status == 200, body
    status, body = call(server, "POST", "/v1/token/auth_refresh", {"refreshtoken": body["refreshToken"]})
    assert status == 200, body
    return body["idToken"]


def v1_client(server: SimServer, **options: Any) -> JQuantsClient:
    options = {"mailaddress": MAIL, "password": PASSWORD, "backoff_base_s": 0.01,
               "rate_limit": server.state.rate_limit, **options}
    return JQuantsClient(server.url, version="v1", **options)


def test_v1_token_flow_and_v1_wire_format(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(mailaddress=MAIL, password=PASSWORD, page_size=7)
    assert call(server, "POST", "/v1/token/auth_user", body={"mailaddress": MAIL, "password": "wrong"}) == (
        400, {"message": BAD_CREDENTIALS})
    assert call(server, "POST", "/v1/token/auth_refresh", {"refreshtoken": "nope"})[0] == 400
    token = sign_in(server)
    status, body = call(server, "GET", "/v1/prices/daily_quotes", {"date": "2024-03-01"})
    assert (status, body) == (401, {"message": INVALID_TOKEN})
    auth = {"Authorization": f"Bearer {token}"}
    status, body = call(server, "GET", "/v1/prices/daily_quotes", {"date": "2024-03-01"}, headers=auth)
    assert status == 200 and len(body["daily_quotes"]) == 7 and "pagination_key" in body
    assert {"Open", "AdjustmentClose", "TurnoverValue"} <= set(body["daily_quotes"][0])
    status, body = call(server, "GET", "/v1/markets/trading_calendar",
                        {"from": "2024-03-18", "to": "2024-03-24", "holidaydivision": "1"}, headers=auth)
    assert status == 200 and [r["Date"] for r in body["trading_calendar"]] == [
        "2024-03-18", "2024-03-19", "2024-03-21", "2024-03-22"]
    status, body = call(server, "GET", "/v1/prices/daily_quotes", {"from": "2024-03-01"}, headers=auth)
    assert status == 400 and body["message"].endswith("as follows; date, code")
    # v2 keys do not open v1 paths.
    assert call(server, "GET", "/v1/prices/daily_quotes", {"date": "2024-03-01"}, headers={"x-api-key": "k"})[0] == 401


def test_v1_client_fetches_the_same_frames_as_v2(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan="premium", page_size=40)

    async def run() -> dict[str, pl.DataFrame]:
        frames = {}
        for version, options in (("v1", {}), ("v2", {"api_key": "k"})):
            client = v1_client(server, plan="premium") if version == "v1" else JQuantsClient(
                server.url, plan="premium", rate_limit=server.state.rate_limit, **options)
            async with client:
                for source, spec in ENDPOINTS.items():
                    # One query per range-axis source: ask for the whole span (sparse tables have rows then).
                    first = D(2024, 1, 4) if spec.axis is Axis.RANGE else D(2024, 5, 1)
                    frames[f"{version}/{source}"] = await client.fetch(source, first, D(2024, 5, 20))
        return frames

    frames = asyncio.run(run())
    for source, spec in ENDPOINTS.items():  # every endpoint, nested fields (daily margin's PublishReason) included
        v1, v2 = frames[f"v1/{source}"], frames[f"v2/{source}"]
        assert v1.height > 0, source
        # Fields only v2 sends (ProdCat, fins/summary's ShEq and ROE, ...) are null from the v1 API.
        v2_only = [f.v1 for f in spec.fields if not f.in_v1]
        assert v1.schema == v2.schema and all(v1[c].null_count() == v1.height for c in v2_only), source
        assert_frame_equal(v1.drop(v2_only), v2.drop(v2_only))
    requests = server.stats()["requests"]
    assert requests["/v1/token/auth_user"] == requests["/v1/token/auth_refresh"] == 1
    assert requests["/v1/prices/daily_quotes"] == requests["/v2/equities/bars/daily"]


def test_v1_expired_id_token_is_refreshed_and_expired_refresh_token_signs_in_again(
    sim_server_factory: Callable[..., SimServer],
) -> None:
    server = sim_server_factory(id_token_ttl_s=0.3, refresh_token_ttl_s=60)
    short = sim_server_factory(id_token_ttl_s=0.3, refresh_token_ttl_s=0.3)

    async def run(target: SimServer) -> list[pl.DataFrame]:
        async with v1_client(target) as client:
            first = await client.fetch("topix", D(2024, 3, 1), D(2024, 3, 31))
            await asyncio.sleep(0.4)
            return [first, await client.fetch("topix", D(2024, 3, 1), D(2024, 3, 31))]

    first, second = asyncio.run(run(server))
    assert_frame_equal(first, second)
    stats = server.stats()
    assert stats["requests"]["/v1/token/auth_user"] == 1 and stats["requests"]["/v1/token/auth_refresh"] == 2
    assert stats["statuses"]["401"] == 1 and stats["requests"]["/v1/indices/topix"] == 3

    asyncio.run(run(short))
    stats = short.stats()
    assert stats["requests"]["/v1/token/auth_user"] == 2  # the refresh token had expired too
    assert stats["requests"]["/v1/token/auth_refresh"] == 3 and stats["statuses"]["400"] == 1


def test_v1_wrong_credentials_name_the_settings(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(mailaddress=MAIL, password=PASSWORD)

    async def run() -> None:
        async with v1_client(server, password="wrong") as client:
            await client.fetch("topix", D(2024, 3, 1), D(2024, 3, 31))

    with pytest.raises(GogokuError, match="sign-in .* answered 400: 'mailaddress' or 'password' is incorrect.*"
                                          "JQUANTS_MAILADDRESS and JQUANTS_PASSWORD"):
        asyncio.run(run())
    with pytest.raises(GogokuError, match="JQUANTS_MAILADDRESS and JQUANTS_PASSWORD must both be set"):
        JQuantsClient(server.url, version="v1", mailaddress=MAIL)


def test_v2_key_errors(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(api_key="right")
    path, params = "/v2/equities/bars/daily", {"date": "2024-03-01"}
    assert call(server, "GET", path, params) == (403, {"message": INVALID_KEY})
    assert call(server, "GET", path, params, headers={"x-api-key": "wrong"}) == (403, {"message": INVALID_KEY})
    assert call(server, "GET", path, params, headers={"Authorization": f"Bearer {sign_in(server)}"})[0] == 403
    assert call(server, "GET", path, params, headers={"x-api-key": "right"})[0] == 200

    async def run(key: str) -> pl.DataFrame:
        async with JQuantsClient(server.url, api_key=key, rate_limit=server.state.rate_limit) as client:
            return await client.fetch("daily_quotes", D(2024, 3, 1), D(2024, 3, 1))

    with pytest.raises(GogokuError, match="answered 403: The incoming api key is invalid.*check JQUANTS_API_KEY"):
        asyncio.run(run("wrong"))
    assert asyncio.run(run("right")).height == server.state.market.daily_quotes(D(2024, 3, 1), D(2024, 3, 1)).height
