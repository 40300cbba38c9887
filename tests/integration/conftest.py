"""Shared fixtures for integration tests (this file's fixtures: names starting with `sim_`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer, run_in_thread

SIM_START = dt.date(2024, 1, 4)
SIM_END = dt.date(2024, 6, 28)
# Servers keep their plan's requests per window, but per 50 ms instead of a minute, so tests run in seconds.
FAST_WINDOW_S = 0.05


@pytest.fixture(scope="session")
def sim_market() -> SimMarket:
    """A small simulated market: 30 stocks, the first half of 2024."""
    return SimMarket(seed=11, n_stocks=30, start=SIM_START, end=SIM_END)


@pytest.fixture()
def sim_server_factory(sim_market: SimMarket) -> Iterator[Callable[..., SimServer]]:
    """Starts simulator servers on 127.0.0.1 with the given options; stops them all afterwards."""
    from gogoku.jquants import ratelimit

    # A server started here may get the port of one that an earlier test of this process stopped, and the
    # process-wide limiters are keyed by URL and credential: each test starts without them (seen: a test's
    # client counted the tokens an earlier test's client had taken from the same URL's bucket).
    ratelimit._REGISTRY.clear()
    servers: list[SimServer] = []

    def start(**options: Any) -> SimServer:
        options.setdefault("rate_window_s", FAST_WINDOW_S)
        server = run_in_thread(options.pop("market", sim_market), **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture()
def sim_server(sim_server_factory: Callable[..., SimServer]) -> SimServer:
    """A standard-plan simulator with small pages."""
    return sim_server_factory(plan="standard", page_size=100)
