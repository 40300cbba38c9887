"""Opening a J-Quants client from Settings, with the built-in simulator when no API URL is configured."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import polars as pl

from gogoku.config import Settings
from gogoku.jquants.client import JQuantsClient

SIM_API_KEY = "simulator"  # the built-in simulator accepts any non-empty key


@asynccontextmanager
async def open_client(settings: Settings, **client_options: Any) -> AsyncIterator[JQuantsClient]:
    """A connected client; starts (and stops) the in-process simulator when `settings.api_url` is None."""
    from gogoku.jquants.market import SimMarket
    from gogoku.jquants.server import run_in_thread

    server = None
    url, api_key = settings.api_url, settings.api_key
    if url is None:
        market = SimMarket(seed=settings.sim_seed, n_stocks=settings.sim_stocks)
        server = await asyncio.to_thread(run_in_thread, market, plan=settings.plan_tier)
        url, api_key = server.url, api_key or SIM_API_KEY
    try:
        async with JQuantsClient(url, version=settings.api_version, api_key=api_key,
                                 mailaddress=settings.mailaddress, password=settings.password,
                                 plan=settings.plan_tier, **client_options) as client:
            yield client
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


def fetch_sync(settings: Settings, source: str, start: dt.date, end: dt.date,
               **client_options: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Fetch one source for [start, end]; returns the typed frame and request statistics."""

    async def run() -> tuple[pl.DataFrame, dict[str, Any]]:
        t0 = time.perf_counter()
        async with open_client(settings, **client_options) as client:
            frame = await client.fetch(source, start, end)
            stats = {
                "source": source, "rows": frame.height, "api_calls": client.api_calls,
                "calls_by_path": dict(client.calls_by_path), "elapsed_s": round(time.perf_counter() - t0, 3),
            }
        return frame, stats

    return asyncio.run(run())
