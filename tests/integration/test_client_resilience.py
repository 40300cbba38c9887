"""The client against real simulator servers: every request through the bucket and counted, Retry-After
capped and logged, and fetches that resume from a per-query checkpoint after a failure."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.errors import GogokuError
from gogoku.jquants.checkpoint import DirectoryCheckpoint, QueryCheckpoint
from gogoku.jquants.client import JQuantsClient, query_plan
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.jquants.ratelimit import RateLimit
from gogoku.sim.server import Faults, SimServer

pytestmark = pytest.mark.integration

D = dt.date


def fetch(server: SimServer, source: str, start: dt.date, end: dt.date, checkpoint: QueryCheckpoint | None = None,
          **options: Any) -> tuple[pl.DataFrame, JQuantsClient]:
    options = {"api_key": "test-key", "plan": "premium", "backoff_base_s": 0.01, "timeout_s": 0.5,
               "rate_limit": server.state.rate_limit, **options}
    client = JQuantsClient(server.url, **options)

    async def run() -> pl.DataFrame:
        async with client:
            return await client.fetch(source, start, end, checkpoint=checkpoint)

    return asyncio.run(run()), client


def settled_stats(server: SimServer) -> dict[str, Any]:
    """The server's counts once the answers to requests a failed fetch abandoned have been counted."""
    stats = server.stats()
    for _ in range(50):
        time.sleep(0.05)
        stats, previous = server.stats(), stats
        if stats == previous:
            break
    return stats


def requests_since(server: SimServer, before: dict[str, Any]) -> dict[str, int]:
    now = server.stats()
    return {"total": now["total"] - before["total"],
            "200": now["statuses"].get("200", 0) - before["statuses"].get("200", 0)}


# ---------------------------------------------------------------- every request through the bucket
@pytest.mark.parametrize("faults", [Faults(reset=0.3), Faults(reset=0.15, truncate=0.1, error=0.1)],
                         ids=["reset", "mixed"])
def test_server_and_client_count_the_same_requests(faults: Faults,
                                                    sim_server_factory: Callable[..., SimServer]) -> None:
    # aiohttp used to re-send a request on a dropped connection by itself, outside the bucket: with 30%
    # resets the server saw 88 requests where the client had counted (and paid tokens for) 64.
    server = sim_server_factory(plan="premium", page_size=13, faults=faults)
    frame, client = fetch(server, "daily_quotes", D(2024, 2, 1), D(2024, 2, 29), max_concurrency=16, max_retries=10)
    assert frame.height == server.state.market.daily_quotes(D(2024, 2, 1), D(2024, 2, 29)).height
    stats = server.stats()
    assert stats["faults"].get("reset", 0) >= 5
    assert client.statuses["ServerDisconnectedError"] >= 5
    assert stats["total"] == client.api_calls == client.limiter.acquired
    assert stats["requests"] == dict(client.calls_by_path)


def test_v1_sign_ins_are_counted_and_limited_too(sim_server_factory: Callable[..., SimServer]) -> None:
    server = sim_server_factory(plan="premium", page_size=13, faults=Faults(reset=0.3), id_token_ttl_s=0.2)
    frame, client = fetch(server, "topix", D(2024, 1, 4), D(2024, 6, 28), version="v1", api_key=None,
                          mailaddress="me@example.com", password="pw", max_retries=10)
    assert frame.height > 100
    stats = server.stats()
    assert stats["requests"]["/v1/token/auth_user"] >= 1 and stats["requests"]["/v1/token/auth_refresh"] >= 1
    assert stats["total"] == client.api_calls == client.limiter.acquired
    assert stats["requests"] == dict(client.calls_by_path)


# ---------------------------------------------------------------- Retry-After
def test_a_long_retry_after_is_capped_and_logged(sim_server_factory: Callable[..., SimServer],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # One request per 900 s: the second request meets 429 with Retry-After 900.
    server = sim_server_factory(plan="standard", rate_limit=1, rate_window_s=900)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gogoku.jquants.client"), \
            pytest.raises(GogokuError, match=r"still failing after 3 attempts \(HTTP 429"):
        fetch(server, "daily_quotes", D(2024, 3, 4), D(2024, 3, 5), plan="standard", max_concurrency=1,
              max_retries=2, rate_limit=RateLimit(100, 1.0), max_retry_after_s=0.3)
    assert time.monotonic() - t0 < 10
    waits = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert len(waits) == 2 and all(r.levelno == logging.WARNING for r in caplog.records if "Retry-After" in r.getMessage())
    assert waits[0] == ("J-Quants /v2/equities/bars/daily answered 429 with Retry-After 900s (capped by "
                        "JQUANTS_MAX_RETRY_AFTER_S=0.3): waiting 0.3s before retry 1/2")
    assert server.stats()["statuses"] == {"200": 1, "429": 3}


def test_a_short_retry_after_is_honoured_as_given(sim_server_factory: Callable[..., SimServer],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    server = sim_server_factory(plan="standard", rate_limit=1, rate_window_s=1.0)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gogoku.jquants.client"):
        frame, client = fetch(server, "daily_quotes", D(2024, 3, 4), D(2024, 3, 5), plan="standard",
                              max_concurrency=1, rate_limit=RateLimit(100, 1.0))
    assert frame["Date"].n_unique() == 2 and time.monotonic() - t0 >= 0.9
    waits = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert waits and waits[0].startswith("J-Quants /v2/equities/bars/daily answered 429 with Retry-After 1s "
                                         "(within JQUANTS_MAX_RETRY_AFTER_S=120): waiting 1.0s before retry 1/6")


# ---------------------------------------------------------------- resumable fetches
def test_a_failed_fetch_resumes_from_its_checkpoint(sim_server_factory: Callable[..., SimServer],
                                                    tmp_path: Path) -> None:
    start, end = D(2024, 2, 1), D(2024, 3, 29)
    n_queries = len(query_plan(ENDPOINTS["daily_quotes"], start, end))
    clean, _ = fetch(sim_server_factory(plan="premium"), "daily_quotes", start, end)
    # One page per query (default page size), a fifth of the requests fail (the n-th visit of a URL always
    # draws the same): with one retry, the queries of 2024-02-26 and 2024-03-27 fail twice in a row.
    server = sim_server_factory(plan="premium", faults=Faults(error=0.2))
    checkpoint = DirectoryCheckpoint(tmp_path / "ckpt")
    with pytest.raises(GogokuError, match="still failing after 2 attempts"):
        fetch(server, "daily_quotes", start, end, checkpoint, max_retries=1, max_concurrency=1)
    saved = len(checkpoint.keys())
    assert 0 < saved < n_queries
    before = settled_stats(server)
    assert before["statuses"]["200"] >= saved

    # The rerun asks only for the queries that did not complete, and returns the fault-free frame.
    frame, client = fetch(server, "daily_quotes", start, end, checkpoint, max_retries=10)
    assert_frame_equal(frame, clean)
    assert client.reused_queries == saved
    assert requests_since(server, before) == {"total": client.api_calls, "200": n_queries - saved}
    assert len(checkpoint.keys()) == n_queries

    # A later, overlapping request is served from the checkpoint: no API call at all.
    before = server.stats()
    march, client = fetch(server, "daily_quotes", D(2024, 3, 1), D(2024, 3, 29), checkpoint)
    assert_frame_equal(march, clean.filter(pl.col("Date") >= D(2024, 3, 1)))
    assert requests_since(server, before)["total"] == client.api_calls == 0


def test_checkpoints_keep_the_halves_of_a_split_query(sim_server_factory: Callable[..., SimServer],
                                                      tmp_path: Path) -> None:
    server = sim_server_factory(plan="premium", max_rows=30)
    checkpoint = DirectoryCheckpoint(tmp_path / "ckpt")
    first, client = fetch(server, "topix", D(2024, 1, 4), D(2024, 6, 28), checkpoint)
    statuses = server.stats()["statuses"]
    assert statuses["413"] >= 2 and len(checkpoint.keys()) == statuses["200"]
    before = server.stats()
    second, client = fetch(server, "topix", D(2024, 1, 4), D(2024, 6, 28), checkpoint)
    assert_frame_equal(first, second)
    # Only the split queries are asked again (each meets its 413); every answered half is reused.
    assert requests_since(server, before) == {"total": statuses["413"], "200": 0}
    assert client.reused_queries == statuses["200"]


def test_a_fetch_still_returns_nothing_when_a_query_fails(sim_server_factory: Callable[..., SimServer],
                                                          tmp_path: Path) -> None:
    server = sim_server_factory(plan="premium", faults=Faults(error=0.5))
    checkpoint = DirectoryCheckpoint(tmp_path / "ckpt")
    result = None
    with pytest.raises(GogokuError, match="nothing was returned"):
        result, _ = fetch(server, "daily_quotes", D(2024, 2, 1), D(2024, 2, 29), checkpoint, max_retries=0)
    assert result is None


# ---------------------------------------------------------------- the directory checkpoint
WRITER = """
import sys
import polars as pl
from gogoku.jquants.checkpoint import DirectoryCheckpoint
ckpt = DirectoryCheckpoint(sys.argv[1])
frames = [pl.DataFrame({"v": pl.arange(0, 3_000_000, eager=True) + i, "s": ["x" * 20] * 3_000_000}) for i in (0, 1)]
print("ready", flush=True)
i = 0
while True:
    ckpt.put("daily_quotes_key", frames[i % 2])
    i += 1
"""


def test_a_kill_during_a_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    heights = set()
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.35 * attempt)  # somewhere inside a write (each takes a few tenths of a second)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        checkpoint = DirectoryCheckpoint(folder)
        frame = checkpoint.get("daily_quotes_key")
        assert frame is None or (frame.height == 3_000_000 and frame["v"][0] in (0, 1))
        heights.add(None if frame is None else frame.height)
        # Whatever the kill left is hidden: only complete files carry the final name.
        assert checkpoint.keys() in ([], ["daily_quotes_key"])
    assert 3_000_000 in heights
    leftovers = list(folder.glob(".*.tmp"))
    assert leftovers  # the kills did land inside writes
    for tmp in leftovers:
        os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    DirectoryCheckpoint(folder)  # opening it removes temp files older than an hour
    assert not list(folder.glob(".*.tmp"))


def test_an_unreadable_checkpoint_file_is_dropped_and_refetched(sim_server_factory: Callable[..., SimServer],
                                                                tmp_path: Path) -> None:
    server = sim_server_factory(plan="premium")
    checkpoint = DirectoryCheckpoint(tmp_path / "ckpt")
    first, _ = fetch(server, "topix", D(2024, 3, 1), D(2024, 3, 29), checkpoint)
    (key,) = checkpoint.keys()
    checkpoint.path(key).write_bytes(b"PAR1 not a parquet file")
    before = server.stats()
    second, client = fetch(server, "topix", D(2024, 3, 1), D(2024, 3, 29), checkpoint)
    assert_frame_equal(first, second)
    assert requests_since(server, before)["200"] == 1 and client.reused_queries == 0
    assert checkpoint.keys() == [key]
    with pytest.raises(ValueError, match="checkpoint key"):
        checkpoint.get("../escape")
