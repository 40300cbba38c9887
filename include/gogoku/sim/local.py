"""The built-in simulator of a process: started from Settings when no API URL is configured.

`start_simulator` serves a `SimMarket` for the settings' seed, stocks and plan on 127.0.0.1, in a daemon
thread of this process, with the plan's requests per window but a window of
`gogoku.jquants.session.SIM_RATE_WINDOW_S` instead of a minute (the client's bucket uses the same), so
local runs exercise the rate limiter without waiting on it. It accepts any non-empty key, or mail address
and password for v1. Each process starts its own, so its limit is never shared.

`open_client` and `fetch_sync` connect to the configured API, or to a built-in simulator they start and
stop around the client (`gogoku.jquants.session.make_client` builds the client either way).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import polars as pl

from gogoku.config import Settings
from gogoku.jquants.checkpoint import QueryCheckpoint
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.session import SIM_RATE_WINDOW_S, make_client
from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer, run_in_thread

log = logging.getLogger(__name__)


def start_simulator(settings: Settings) -> SimServer:
    """The built-in simulator for `settings` (seed, stocks, plan) on 127.0.0.1."""
    t0 = time.perf_counter()
    market = SimMarket(seed=settings.sim_seed, n_stocks=settings.sim_stocks)
    server = run_in_thread(market, plan=settings.plan_tier, rate_window_s=SIM_RATE_WINDOW_S,
                           date_windows=settings.sim_plan_windows)
    log.info("built-in simulator at %s (seed %d, %d stocks, plan %s) ready in %.1fs", server.url,
             settings.sim_seed, settings.sim_stocks, settings.plan_tier, time.perf_counter() - t0)
    return server


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
