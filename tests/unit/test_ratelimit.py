"""The client's token bucket and the plan windows, with hand-computed expectations."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest

from gogoku.config import Settings, plan_window
from gogoku.errors import InputError
from gogoku.jquants.ratelimit import SAFETY, RateLimit, TokenBucket, min_duration_s, shared_limiter

D = dt.date


def test_plan_limits_and_bursts() -> None:
    assert RateLimit.for_plan("free") == RateLimit(5, 60.0)
    assert RateLimit.for_plan("premium", window_s=1.0) == RateLimit(500, 1.0)
    assert RateLimit.for_plan("standard", requests=30) == RateLimit(30, 60.0)
    assert [RateLimit.for_plan(p).burst for p in ("free", "light", "standard", "premium")] == [1, 6, 12, 50]
    with pytest.raises(InputError, match="plan 'gold'"):
        RateLimit.for_plan("gold")
    with pytest.raises(InputError, match="rate limit 0 per 60"):
        RateLimit(0)


def test_bucket_spends_its_burst_then_spaces_requests() -> None:
    # 11 per second, burst 1: refill 10 tokens per 1.05 s, one every 0.105 s.
    bucket = TokenBucket(RateLimit(11, 1.0))
    waits = [bucket.reserve() for _ in range(4)]
    assert waits[0] == 0
    assert waits[1:] == pytest.approx([0.105, 0.21, 0.315], abs=0.002)
    # 5 per 60 s (free): after its one burst token, one request per 60 * 1.05 / 4 = 15.75 s.
    free = TokenBucket(RateLimit.for_plan("free"))
    assert [round(free.reserve(), 2) for _ in range(3)] == [0, 15.75, 31.5]
    assert min_duration_s(3, RateLimit.for_plan("free")) == pytest.approx(31.5)
    assert min_duration_s(245, RateLimit(120, 1.0)) == pytest.approx(233 * SAFETY / 108)


def test_no_window_of_the_servers_length_sees_more_than_the_limit() -> None:
    limit = RateLimit(10, 0.2)
    bucket = TokenBucket(limit)
    t0 = time.monotonic()
    starts = sorted(t0 + bucket.reserve() for _ in range(40))
    # A sliding window of 0.2 s anchored at any request holds at most 10 requests.
    assert max(sum(1 for t in starts if s <= t < s + limit.window_s) for s in starts) <= 10
    assert starts[-1] - t0 == pytest.approx(39 * 0.2 * SAFETY / 9, rel=0.01)


def test_pause_holds_everyone_back() -> None:
    bucket = TokenBucket(RateLimit(100, 1.0))  # burst 10
    assert bucket.reserve() == 0
    bucket.pause(0.5)
    assert bucket.reserve() == pytest.approx(0.5, abs=0.01)
    assert bucket.reserve() == pytest.approx(0.5, abs=0.01)  # the refill (0.011 s a token) is shorter


def test_the_registry_shares_one_bucket_per_url_and_credential_across_threads_and_loops() -> None:
    limit = RateLimit(1000, 1.0)
    a = shared_limiter("http://127.0.0.1:1/", "v2:key-a", limit)
    assert shared_limiter("http://127.0.0.1:1", "v2:key-a", limit) is a
    assert shared_limiter("http://127.0.0.1:1", "v2:key-b", limit) is not a
    assert shared_limiter("http://127.0.0.1:2", "v2:key-a", limit) is not a
    before = a.acquired

    def worker() -> None:
        async def take() -> None:
            await asyncio.gather(*(a.acquire() for _ in range(25)))

        asyncio.run(take())  # each thread runs its own event loop

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.acquired - before == 100
    assert shared_limiter("http://127.0.0.1:1", "v2:key-a", RateLimit(50, 1.0)).limit == RateLimit(50, 1.0)


@pytest.mark.parametrize(("plan", "version", "expected"), [
    ("free", "v2", (D(2023, 9, 2), D(2025, 9, 2))),  # 12 weeks before 2025-11-25, back 2 years
    ("light", "v2", (D(2020, 11, 25), D(2025, 11, 25))),
    ("standard", "v2", (D(2015, 11, 25), D(2025, 11, 25))),
    ("premium", "v2", (D(2005, 11, 25), D(2025, 11, 25))),
    ("premium", "v1", (None, D(2025, 11, 25))),
])
def test_plan_windows(plan: str, version: str, expected: tuple[dt.date | None, dt.date]) -> None:
    assert plan_window(plan, D(2025, 11, 25), version) == expected


def test_plan_window_on_29_february_and_settings() -> None:
    assert plan_window("light", D(2024, 2, 29)) == (D(2019, 2, 28), D(2024, 2, 29))
    assert Settings.from_env({}).rate_limit is None
    assert Settings.from_env({"JQUANTS_RATE_LIMIT": "300"}).rate_limit == 300
    with pytest.raises(InputError, match="JQUANTS_RATE_LIMIT='0'"):
        Settings.from_env({"JQUANTS_RATE_LIMIT": "0"})
    assert Settings.from_env({"GOGOKU_SIM_PLAN_WINDOWS": "1"}).sim_plan_windows is True
