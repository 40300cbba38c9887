"""Opening a J-Quants client from Settings, with the built-in simulator when no API URL is configured.

The built-in simulator keeps the plan's requests per window but with a window of `SIM_RATE_WINDOW_S`
instead of a minute (the client's bucket uses the same), so local runs exercise the rate limiter
without waiting on it. It accepts any non-empty key, or mail address and password for v1.

A configured API takes its limit from Settings: the plan's (or JQUANTS_RATE_LIMIT) requests per
JQUANTS_RATE_WINDOW_S (60 s), in a bucket per process, or shared by every process of the deployment
through Redis when JQUANTS_RATE_LIMITER is set. The built-in simulator runs inside each process, so
its limit is never shared.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import polars as pl

from gogoku.config import Settings
from gogoku.jquants.checkpoint import QueryCheckpoint
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.ratelimit import RateLimit

if TYPE_CHECKING:
    from gogoku.jquants.server import SimServer

log = logging.getLogger(__name__)

SIM_API_KEY = "simulator"  # the built-in simulator accepts any non-empty key
SIM_MAILADDRESS = "simulator@localhost"
SIM_PASSWORD = "simulator"
SIM_RATE_WINDOW_S = 0.05


def start_simulator(settings: Settings) -> SimServer:
    """The built-in simulator for `settings` (seed, stocks, plan) on 127.0.0.1."""
    from gogoku.jquants.market import SimMarket
    from gogoku.jquants.server import run_in_thread

    t0 = time.perf_counter()
    market = SimMarket(seed=settings.sim_seed, n_stocks=settings.sim_stocks)
    server = run_in_thread(market, plan=settings.plan_tier, rate_window_s=SIM_RATE_WINDOW_S,
                           date_windows=settings.sim_plan_windows)
    log.info("built-in simulator at %s (seed %d, %d stocks, plan %s) ready in %.1fs", server.url,
             settings.sim_seed, settings.sim_stocks, settings.plan_tier, time.perf_counter() - t0)
    return server


def make_client(settings: Settings, url: str | None = None, **client_options: Any) -> JQuantsClient:
    """A client for `settings`; `url` is the built-in simulator's when `settings.api_url` is None."""
    builtin = settings.api_url is None
    base_url = url if builtin else settings.api_url
    if base_url is None:
        raise ValueError("make_client: the built-in simulator's url is needed when JQUANTS_API_URL is not set")
    window = SIM_RATE_WINDOW_S if builtin else settings.rate_window_s
    options: dict[str, Any] = {
        "version": settings.api_version, "plan": settings.plan_tier,
        "api_key": settings.api_key or (SIM_API_KEY if builtin else None),
        "mailaddress": settings.mailaddress or (SIM_MAILADDRESS if builtin else None),
        "password": settings.password or (SIM_PASSWORD if builtin else None),
        "rate_limit": RateLimit.for_plan(settings.plan_tier, None if builtin else settings.rate_limit, window),
        "max_retry_after_s": settings.max_retry_after_s,
        # Each process has its own built-in simulator: there is no budget to share with others.
        "rate_limiter": None if builtin else settings.rate_limiter,
    }
    return JQuantsClient(base_url, **{**options, **client_options})


@asynccontextmanager
async def open_client(settings: Settings, **client_options: Any) -> AsyncIterator[JQuantsClient]:
    """A connected client; starts (and stops) the in-process simulator when `settings.api_url` is None."""
    server = None
    if settings.api_url is None:
        server = await asyncio.to_thread(start_simulator, settings)
    try:
        async with make_client(settings, server.url if server else None, **client_options) as client:
            yield client
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


def fetch_sync(settings: Settings, source: str, start: dt.date, end: dt.date, codes: list[str] | None = None,
               checkpoint: QueryCheckpoint | None = None, **client_options: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Fetch one source for [start, end]; returns the typed frame and request statistics.

    `checkpoint` keeps each completed query, so that a rerun after a failure resumes (see `JQuantsClient.fetch`).
    """

    async def run() -> tuple[pl.DataFrame, dict[str, Any]]:
        t0 = time.perf_counter()
        async with open_client(settings, **client_options) as client:
            frame = await client.fetch(source, start, end, codes, checkpoint=checkpoint)
            stats = {
                "source": source, "rows": frame.height, "api_calls": client.api_calls,
                "reused_queries": client.reused_queries,
                "calls_by_path": dict(client.calls_by_path), "statuses": dict(client.statuses),
                "elapsed_s": round(time.perf_counter() - t0, 3),
            }
        return frame, stats

    return asyncio.run(run())
