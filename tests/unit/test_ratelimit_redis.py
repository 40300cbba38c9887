"""The deployment-wide rate limiter (`RedisLimiter`) against the real Redis at 127.0.0.1:6379.

Several threads and processes share one account's budget through Redis; each test works under its
own key prefix in DB 15 and deletes its keys afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from services import REDIS_URL, redis_available

from gogoku.config import Settings
from gogoku.errors import GogokuError, InputError
from gogoku.jquants.ratelimit import (
    SAFETY,
    RateLimit,
    RedisLimiter,
    TokenBucket,
    limiter_key,
    redis_limiter,
    shared_limiter,
    shown_limiter_url,
)

API = "http://127.0.0.1:9/"


needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis at 127.0.0.1:6379 is not running")


@pytest.fixture()
def prefix() -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    name = f"gogoku-test:{uuid.uuid4().hex}"
    yield name
    if redis_available():
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)


# A worker process: reserves `n` start times from `threads` threads; prints each start as Redis reserved
# it (on Redis's clock: what the limiter promises, whatever delays the busy machine adds to the caller).
WORKER = """
import json, sys, threading, time
from gogoku.jquants.ratelimit import RateLimit, redis_limiter
url, api, cred, prefix, requests, window, threads, n = sys.argv[1:9]
limiter = redis_limiter(url, api, cred, RateLimit(int(requests), float(window)), prefix=prefix)
starts, lock = [], threading.Lock()
def run():
    for _ in range(int(n)):
        wait, start = limiter.reserve_start()
        with lock:
            starts.append(start)
ts = [threading.Thread(target=run) for _ in range(int(threads))]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(starts))
"""


def _workers(count: int, prefix: str, limit: RateLimit, threads: int, n: int,
             credential: str = "v2:shared-key") -> list[subprocess.Popen[str]]:
    args = [REDIS_URL, API, credential, prefix, str(limit.requests), str(limit.window_s), str(threads), str(n)]
    return [subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, text=True)
            for _ in range(count)]


def _max_in_window(starts: list[float], window_s: float) -> int:
    starts = sorted(starts)
    return max(sum(1 for t in starts if s <= t < s + window_s) for s in starts)


@needs_redis
def test_requests_leave_one_interval_apart_on_one_budget(prefix: str) -> None:
    limit = RateLimit(10, 1.0)
    limiter = redis_limiter(REDIS_URL, API, "v2:key", limit, prefix=prefix)
    # Burst 1: then one request per window x SAFETY / requests = 0.105 s, measured on Redis's clock.
    assert limiter.interval_s == pytest.approx(1.0 * SAFETY / 10)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[0] == 0
    assert waits[1:] == pytest.approx([0.105, 0.21, 0.315, 0.42], abs=0.02)
    assert limiter.acquired == 5
    # The same account in this process is the same limiter; another credential is another budget.
    assert redis_limiter(REDIS_URL, API.rstrip("/"), "v2:key", limit, prefix=prefix) is limiter
    other = redis_limiter(REDIS_URL, API, "v2:other", limit, prefix=prefix)
    assert other.key != limiter.key and other.reserve() == 0
    assert isinstance(shared_limiter(API, "v2:key", limit), TokenBucket)
    assert isinstance(shared_limiter(API, "v2:key", limit, backend=REDIS_URL), RedisLimiter)


@needs_redis
def test_threads_and_processes_together_never_exceed_the_limit_in_any_window(prefix: str) -> None:
    limit = RateLimit(10, 1.0)
    # 4 processes x 3 threads x 5 requests share one budget of 10 per second.
    procs = _workers(4, prefix, limit, threads=3, n=5)
    starts = [t for p in procs for t in json.loads(p.communicate(timeout=120)[0])]
    assert all(p.returncode == 0 for p in procs)
    assert len(starts) == 60
    assert _max_in_window(starts, limit.window_s) <= limit.requests
    # ... and use it: the steady rate is the plan's / SAFETY (one interval between starts).
    starts.sort()
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert rate == pytest.approx(limit.requests / limit.window_s / SAFETY, rel=0.05)


@needs_redis
def test_a_retry_after_pause_holds_back_every_process(prefix: str) -> None:
    limit = RateLimit(100, 1.0)
    here = redis_limiter(REDIS_URL, API, "v2:shared-key", limit, prefix=prefix)
    assert here.reserve() == 0
    paused_at = time.time()
    here.pause(2.0)  # a 429 with Retry-After: 2 seen by this process
    procs = _workers(2, prefix, limit, threads=1, n=2)
    starts = sorted(t for p in procs for t in json.loads(p.communicate(timeout=60)[0]))
    # Nobody starts before the pause ends; then one interval (10.5 ms) apart, not in a burst.
    assert starts[0] == pytest.approx(paused_at + 2.0, abs=0.1)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= here.interval_s - 0.005
    import redis

    state = redis.Redis.from_url(REDIS_URL).hgetall(here.key)
    assert float(state[b"blocked_until"]) == pytest.approx(paused_at + 2.0, abs=0.1)


@needs_redis
def test_the_key_and_the_state_never_contain_the_credential(prefix: str) -> None:
    import redis

    secret = "v2:sk-live-9f8e7d6c5b4a"
    limiter = redis_limiter(REDIS_URL, API, secret, RateLimit(10, 1.0), prefix=prefix)
    limiter.reserve()
    client = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*")]
    assert keys == [limiter.key] == [limiter_key(API, secret, prefix)]
    stored = json.dumps({k: {f.decode(): v.decode() for f, v in client.hgetall(k).items()} for k in keys})
    for text in (keys[0], stored, repr(limiter.__dict__)):
        assert "sk-live" not in text and "9f8e7d6c5b4a" not in text
    assert set(client.hgetall(limiter.key)) == {b"tat", b"blocked_until"}
    assert 0 < client.pttl(limiter.key) <= 2000  # an idle account's state expires


def test_an_unreachable_redis_is_a_one_line_error_naming_the_setting() -> None:
    url = "redis://:hunter2pass@127.0.0.1:1/0"  # nothing listens on port 1
    with pytest.raises(InputError) as info:
        redis_limiter(url, API, "v2:key", RateLimit(10, 1.0))
    message = str(info.value)
    assert message.startswith("JQUANTS_RATE_LIMITER=redis://:***@127.0.0.1:1/0: cannot reach Redis")
    assert "\n" not in message and "hunter2pass" not in message
    assert shown_limiter_url("rediss://user:pw@h:6380/2") == "rediss://user:***@h:6380/2"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_lost_after_the_start_fails_the_request_with_a_one_line_error(tmp_path: os.PathLike[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        limiter = redis_limiter(f"redis://127.0.0.1:{port}/0", API, "v2:key", RateLimit(10, 1.0))
        assert limiter.reserve() == 0
    finally:
        server.terminate()
        server.wait(timeout=10)
    with pytest.raises(GogokuError) as info:
        limiter.reserve()
    message = str(info.value)
    assert message.startswith(f"JQUANTS_RATE_LIMITER=redis://127.0.0.1:{port}/0: the shared rate limiter failed")
    assert "\n" not in message


def test_settings_read_the_limiter_url_and_the_window() -> None:
    base = {"GOGOKU_DATA_ROOT": "/tmp/gogoku-test-root"}
    plain = Settings.from_env(base)
    assert plain.rate_limiter is None and plain.rate_window_s == 60.0
    shared = Settings.from_env({**base, "JQUANTS_RATE_LIMITER": " redis://:pw@cache:6379/0 ",
                                "JQUANTS_RATE_WINDOW_S": "6", "JQUANTS_RATE_LIMIT": "12"})
    assert shared.rate_limiter == "redis://:pw@cache:6379/0" and shared.rate_window_s == 6.0
    assert "pw@" not in repr(shared)  # the URL may carry Redis's password
    for bad in ("http://cache:6379", "cache:6379"):
        with pytest.raises(InputError, match="JQUANTS_RATE_LIMITER=.*expected a Redis URL"):
            Settings.from_env({**base, "JQUANTS_RATE_LIMITER": bad})
    with pytest.raises(InputError, match="JQUANTS_RATE_WINDOW_S"):
        Settings.from_env({**base, "JQUANTS_RATE_WINDOW_S": "0"})


@needs_redis
def test_threads_of_one_process_share_the_limiter_across_event_loops(prefix: str) -> None:
    import asyncio

    limiter = redis_limiter(REDIS_URL, API, "v2:key", RateLimit(1000, 1.0), prefix=prefix)

    def worker() -> None:
        async def take() -> None:
            await asyncio.gather(*(limiter.acquire() for _ in range(10)))

        asyncio.run(take())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.acquired == 30
