"""Publication-aware coverage and restatements of the raw cache, against real simulator servers whose
markets end on different days (the API's "now": each answers with its own `Date`).

The reproduction: a weekly-margin refresh ending on the Monday after a record Friday used to record
the Friday as covered before its rows were published (Tuesday after the close), and no later refresh
asked again. The property: for random sequences of daily refreshes over a month (the market's end
advancing day by day, windows of random length, days skipped at random), every load returns what the
API returns at that moment, and a final load of the whole range equals one fetch made afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.cache.raw import RawCache, cache_file_metadata, read_cache_file, read_cache_metadata
from gogoku.cache.sources import CACHED_SOURCES, SourceLoader
from gogoku.calendar import TOKYO, add_business_days, business_days
from gogoku.config import Settings
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.ratelimit import RateLimit
from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer, run_in_thread

pytestmark = pytest.mark.integration

D = dt.date
# 24 stocks from 2024-05-01: 24530 splits on 2024-07-30; the month below holds statements, weekly and
# daily margin, flows, short selling and positions.
MARKET = {"seed": 103, "n_stocks": 24, "start": D(2024, 5, 1)}
SPLIT_CODE, SPLIT_DAY = "24530", D(2024, 7, 30)
FIRST_END, LAST_END = D(2024, 7, 16), D(2024, 8, 16)
FAST = RateLimit(1_000_000)  # the servers here have no limit; the bucket must not wait either
DELAYED = ["weekly_margin_interest", "daily_margin_interest", "statements", "trades_spec", "short_selling",
           "short_selling_positions", "announcement", "daily_quotes"]


class Servers:
    """One simulator server per market end (started on first use), all on the same seed."""

    def __init__(self, **market: Any) -> None:
        self.market = market
        self.servers: dict[dt.date, SimServer] = {}

    def __call__(self, end: dt.date) -> SimServer:
        if end not in self.servers:
            market = SimMarket(**self.market, end=end)
            self.servers[end] = run_in_thread(market, plan="standard", rate_limits=False, date_windows=False)
        return self.servers[end]

    def settings(self, end: dt.date, root: Path) -> Settings:
        return Settings.from_env({
            "JQUANTS_API_URL": self(end).url, "JQUANTS_API_KEY": "test-key", "JQUANTS_PLAN_TIER": "standard",
            "GOGOKU_DATA_ROOT": str(root), "JQUANTS_RATE_LIMIT": "1000000",
        })

    def load(self, end: dt.date, root: Path, source: str, start: dt.date, last: dt.date) -> Any:
        with SourceLoader(self.settings(end, root)) as loader:
            return loader.load(source, start, last)

    def fetch(self, end: dt.date, source: str, start: dt.date, last: dt.date, codes: list[str] | None = None
              ) -> pl.DataFrame:
        """One direct fetch from the market ending `end`, sorted as the cache sorts (its keys)."""
        async def run() -> pl.DataFrame:
            async with JQuantsClient(self(end).url, api_key="test-key", plan="standard", rate_limit=FAST) as client:
                return await client.fetch(source, start, last, codes)

        return asyncio.run(run()).sort(list(CACHED_SOURCES[source].key_cols))

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers(**MARKET)
    yield s
    s.stop()


def stats(server: SimServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/__sim__/stats") as resp:
        return json.loads(resp.read())


def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert_frame_equal(a, b, check_exact=True)


# ---------------------------------------------------------------- the API's clock
def test_the_simulator_says_its_end_is_now_and_the_client_keeps_it(servers: Servers) -> None:
    server = servers(D(2024, 6, 17))
    with urllib.request.urlopen(server.url + "/__sim__/stats") as resp:
        sent = email.utils.parsedate_to_datetime(resp.headers["Date"])
    assert sent == dt.datetime(2024, 6, 17, 23, 59, 59, tzinfo=TOKYO)

    async def run() -> JQuantsClient:
        async with JQuantsClient(server.url, api_key="k", plan="standard", rate_limit=FAST) as client:
            await client.fetch("topix", D(2024, 6, 3), D(2024, 6, 14))
            return client

    client = asyncio.run(run())
    assert client.server_time == client.first_server_time == sent
    assert client.as_of() == sent


# ---------------------------------------------------------------- the reproduction
def test_a_weekly_margin_record_published_after_a_refresh_arrives_with_the_next(
    tmp_path: Path, servers: Servers
) -> None:
    s = Servers(seed=11, n_stocks=30, start=D(2024, 1, 4))  # the integration tests' usual market
    try:
        source = "weekly_margin_interest"
        first = s.load(D(2024, 6, 17), tmp_path, source, D(2024, 5, 18), D(2024, 6, 17))
        fridays = sorted(set(first.frame["Date"]))
        assert fridays == [D(2024, 5, 24), D(2024, 5, 31), D(2024, 6, 7)]  # 06-14 is published on 06-18
        # Covered only through the last day final on Monday 06-17 (23:59:59 JST): the Thursday.
        assert first.final_through == D(2024, 6, 13)
        assert read_cache_metadata(first.path)["final_through"] == "2024-06-13"

        second = s.load(D(2024, 6, 18), tmp_path, source, D(2024, 5, 19), D(2024, 6, 18))
        assert second.hit == "partial" and second.missing_ranges == [(D(2024, 6, 14), D(2024, 6, 18))]
        direct = s.fetch(D(2024, 6, 18), source, D(2024, 5, 19), D(2024, 6, 18))
        assert D(2024, 6, 14) in set(second.frame["Date"])
        same(second.frame, direct)

        # Days after 06-14 are final from 06-20 on: a load on 06-21 is a complete hit with every row.
        third = s.load(D(2024, 6, 20), tmp_path, source, D(2024, 5, 19), D(2024, 6, 18))
        assert third.hit == "partial" and third.missing_ranges == [(D(2024, 6, 17), D(2024, 6, 18))]
        fourth = s.load(D(2024, 6, 21), tmp_path, source, D(2024, 5, 19), D(2024, 6, 18))
        assert fourth.hit == "complete" and fourth.api_calls == 0
        same(fourth.frame, direct)
        print(f"reproduction rows: first {first.frame.height}, after {fourth.frame.height}, direct {direct.height}")
    finally:
        s.stop()


def test_a_provisional_row_that_vanished_upstream_does_not_survive(tmp_path: Path, servers: Servers) -> None:
    # Statements are final at 24:30 (plus the margin): the end day's rows stay provisional. Here the
    # cache holds a fabricated provisional row on the last day; the next load replaces that day whole.
    source, day = "statements", D(2024, 8, 5)
    first = servers.load(day, tmp_path, source, D(2024, 7, 22), day)
    assert first.final_through == D(2024, 8, 4)
    frame = read_cache_file(first.path)
    ghost = frame.filter(pl.col("DisclosedDate") == day).head(1).with_columns(pl.lit("ghost").alias("DisclosureNumber"))
    assert ghost.height == 1
    info = read_cache_metadata(first.path)
    doctored = pl.concat([frame, ghost]).sort("LocalCode", "DisclosureNumber")
    meta = cache_file_metadata(source, D(2024, 7, 22), day, "DisclosedDate", doctored,
                               dt.datetime.fromisoformat(info["as_of"]), D(2024, 8, 4))
    doctored.write_parquet(first.path, metadata=meta)
    again = servers.load(D(2024, 8, 6), tmp_path, source, D(2024, 7, 22), day)
    assert again.missing_ranges == [(day, day)] and again.final_through == day
    assert "ghost" not in set(again.frame["DisclosureNumber"])
    same(again.frame, servers.fetch(D(2024, 8, 6), source, D(2024, 7, 22), day))


# ---------------------------------------------------------------- restatements
def test_a_split_restates_the_cached_history_of_its_code_in_every_file(tmp_path: Path, servers: Servers) -> None:
    source = "daily_quotes"
    june = servers.load(D(2024, 7, 29), tmp_path, source, D(2024, 6, 3), D(2024, 6, 28))
    july = servers.load(D(2024, 7, 29), tmp_path, source, D(2024, 7, 1), D(2024, 7, 29))
    mtimes = {p: p.stat().st_mtime for p in (june.path, july.path)}
    after = D(2024, 7, 31)
    before = stats(servers(after))
    # This load reads neither file; its rows hold the split's ex-date.
    tail = servers.load(after, tmp_path, source, SPLIT_DAY, after)
    event = f"adjustment:{SPLIT_CODE}:{SPLIT_DAY}"
    assert tail.revisions == [event] and sorted(tail.patched) == sorted([june.path, july.path])
    # One query by code (from the first cached day to the day before the split) on top of the two days.
    asked = stats(servers(after))["requests"]["/v2/equities/bars/daily"] - before["requests"].get(
        "/v2/equities/bars/daily", 0)
    assert asked == 2 + 1
    for res, (a, b) in ((june, (D(2024, 6, 3), D(2024, 6, 28))), (july, (D(2024, 7, 1), D(2024, 7, 29)))):
        same(read_cache_file(res.path), servers.fetch(after, source, a, b))
        assert read_cache_metadata(res.path)["revisions"] == [event]
        assert res.path.stat().st_mtime == pytest.approx(mtimes[res.path], abs=1e-3)
    assert read_cache_metadata(tail.path)["revisions"] == [event]
    # The old rows did change (the split back-adjusts the code's earlier prices).
    old = june.frame.filter(pl.col("Code") == SPLIT_CODE)["AdjustmentClose"]
    new = read_cache_file(june.path).filter(pl.col("Code") == SPLIT_CODE)["AdjustmentClose"]
    assert not old.equals(new)

    # Refetching the split's day again (force) finds every file already restated: no query by code.
    before = stats(servers(after))
    servers_settings = servers.settings(after, tmp_path)
    with SourceLoader(servers_settings) as loader:
        again = loader.load(source, SPLIT_DAY, after, force=True)
    assert again.patched == [] and again.revisions == [event]
    asked = stats(servers(after))["requests"]["/v2/equities/bars/daily"] - before["requests"][
        "/v2/equities/bars/daily"]
    assert asked == 2


# ---------------------------------------------------------------- the property
def refresh_plan(rng: np.random.Generator) -> list[tuple[dt.date, dt.date]]:
    """(window start, market end) of each daily refresh: ends advance by business day from FIRST_END
    to LAST_END, about a third skipped; windows of 1..22 business days, starting on any weekday."""
    plan = []
    ends = business_days(FIRST_END, LAST_END)
    for end in ends:
        if end != ends[-1] and rng.random() < 0.35:
            continue
        start = add_business_days(end, -int(rng.integers(0, 22))) - dt.timedelta(days=int(rng.integers(0, 3)))
        plan.append((start, end))
    return plan


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("source", DELAYED)
def test_refreshes_day_by_day_equal_one_fetch_afterwards(source: str, seed: int, tmp_path: Path,
                                                          servers: Servers) -> None:
    plan = refresh_plan(np.random.default_rng([seed, DELAYED.index(source)]))
    for start, end in plan:
        res = servers.load(end, tmp_path, source, start, end)
        # What a load returns is what the API returns at that moment.
        same(res.frame, servers.fetch(end, source, start, end))
    first = min(start for start, _ in plan)
    final = servers.load(LAST_END, tmp_path, source, first, LAST_END)
    expected = servers.fetch(LAST_END, source, first, LAST_END)
    assert expected.height > 0
    same(final.frame, expected)
    same(read_cache_file(final.path), expected)
    if source == "daily_quotes" and first < SPLIT_DAY:
        assert f"adjustment:{SPLIT_CODE}:{SPLIT_DAY}" in read_cache_metadata(final.path)["revisions"]
    # Only the not-yet-final tail is asked again: nothing else of the cache is refetched.
    again = servers.load(LAST_END, tmp_path, source, first, LAST_END)
    tail = [d for d in business_days(first, LAST_END) if d > again.final_through] if again.final_through else []
    assert {d for a, b in again.missing_ranges for d in business_days(a, b)} == set(tail)


def test_an_old_cache_file_counts_as_fetched_at_its_mtime(tmp_path: Path, servers: Servers) -> None:
    # A format-1 file (no as_of in its footer) written on the Monday 2024-06-17 for weekly margin.
    source = "weekly_margin_interest"
    res = servers.load(D(2024, 7, 16), tmp_path, source, D(2024, 5, 18), D(2024, 6, 17))
    frame = read_cache_file(res.path)
    info = read_cache_metadata(res.path)
    old = {k: info[k] for k in ("source", "start", "end", "date_col", "rows", "schema")} | {"format": 1}
    frame.write_parquet(res.path, metadata={"gogoku.cache": json.dumps(old)})
    monday = dt.datetime(2024, 6, 17, 20, 0, tzinfo=TOKYO).timestamp()
    os.utime(res.path, (monday, monday))
    cache = RawCache(tmp_path, max_age_days=None)
    spec = CACHED_SOURCES[source]
    calls: list[tuple[dt.date, dt.date]] = []

    def fetch(a: dt.date, b: dt.date) -> pl.DataFrame:
        calls.append((a, b))
        return servers.fetch(D(2024, 7, 16), source, a, b)

    cache.load(source, D(2024, 5, 18), D(2024, 6, 17), fetch, spec.date_col, spec.key_cols,
               publication=spec.publication)
    # Final through Thursday 06-13 as of its mtime: the Friday and the Monday are asked again.
    assert calls == [(D(2024, 6, 14), D(2024, 6, 17))]
    # Written more than a week after its end, it counts as final through its end.
    path = RawCache(tmp_path / "b").load(source, D(2024, 5, 18), D(2024, 6, 17), fetch, spec.date_col,
                                         spec.key_cols, publication=spec.publication).path
    frame = read_cache_file(path)
    frame.write_parquet(path, metadata={"gogoku.cache": json.dumps(old)})
    late = dt.datetime(2024, 6, 25, tzinfo=TOKYO).timestamp()
    os.utime(path, (late, late))
    calls.clear()
    RawCache(tmp_path / "b", max_age_days=None).load(source, D(2024, 5, 18), D(2024, 6, 17), fetch, spec.date_col,
                                                     spec.key_cols, publication=spec.publication)
    assert calls == []
