"""One API budget for the deployment: real `gogoku` processes, a real simulator server, the real Redis.

Three `gogoku cache refresh` processes with one API key against `gogoku sim serve` enforcing 30
requests per 6 s get no 429 and together use the plan's rate within 10 % (bench/ratelimit.py's run).
A 429 seen by one client pauses the others through Redis; an unreachable Redis is a one-line error
and exit status 2 before any request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from services import REDIS_URL, redis_available

from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.ratelimit import RateLimit, limiter_key, redis_limiter
from gogoku.sim.server import SimServer

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ratelimit.py"
GOGOKU = str(Path(sys.executable).with_name("gogoku"))


needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis at 127.0.0.1:6379 is not running")


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ratelimit", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _delete(key: str) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).delete(key)


@needs_redis
def test_three_refresh_processes_share_the_plans_rate_without_a_429(tmp_path: Path) -> None:
    bench = _bench()
    # 5 requests/s; 48 requests (more than a window's 30) take about 10 s. The window leaves
    # 6 s x 5 % = 0.3 s of slack for stalls of this busy machine between a reservation and the server.
    limit, window_s, days = 30, 6.0, 16
    end = bench.day_ranges(3, days)[-1][1] + dt.timedelta(days=7)
    server, url = bench.start_server(limit, window_s, stocks=30, end=end, latency_ms=5)
    try:
        run = bench.run_refreshes(url, limit, window_s, REDIS_URL, processes=3, days=days, workdir=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
        _delete(limiter_key(url, f"v2:{bench.API_KEY}"))
    assert [p["exit"] for p in run["processes"]] == [0, 0, 0], run["processes"]
    assert run["http_429"] == 0, run
    assert run["requests"] == run["http_200"] == 3 * days
    assert run["rate_vs_plan"] >= 0.9, run


@needs_redis
def test_a_429_seen_by_one_client_pauses_every_process_of_the_account(sim_server_factory: Any) -> None:
    # The server allows 1 request per 3 s; the client believes in 100 per second, so its second
    # request meets a 429 with Retry-After: 3, which it stores in Redis.
    server: SimServer = sim_server_factory(plan="standard", rate_limit=1, rate_window_s=3.0)
    key = f"k-{uuid.uuid4().hex}"
    limit = RateLimit(100, 1.0)

    async def two_calls() -> None:
        async with JQuantsClient(server.url, api_key=key, rate_limit=limit, rate_limiter=REDIS_URL,
                                 max_retries=0) as client:
            await client.query("topix", {"from": "2024-01-04", "to": "2024-01-10"})
            with pytest.raises(Exception, match="429"):
                await client.query("topix", {"from": "2024-01-04", "to": "2024-01-10"})

    try:
        asyncio.run(two_calls())
        paused_at = time.time()
        # Another process of the same account (here: a fresh interpreter) waits out the pause.
        code = ("import json, sys, time; from gogoku.jquants.ratelimit import RateLimit, redis_limiter; "
                "l = redis_limiter(sys.argv[1], sys.argv[2], sys.argv[3], RateLimit(100, 1.0)); "
                "print(json.dumps(time.time() + l.reserve()))")
        out = subprocess.run([sys.executable, "-c", code, REDIS_URL, server.url, f"v2:{key}"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert float(out) == pytest.approx(paused_at + 3.0, abs=0.5)
        assert server.stats()["statuses"] == {"200": 1, "429": 1}
    finally:
        _delete(redis_limiter(REDIS_URL, server.url, f"v2:{key}", limit).key)


def test_the_cli_exits_2_with_one_line_when_redis_is_unreachable(sim_server: SimServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQUANTS_", "GOGOKU_"))}
    env.update({"JQUANTS_API_URL": sim_server.url, "JQUANTS_API_KEY": "k", "GOGOKU_DATA_ROOT": str(tmp_path),
                "JQUANTS_RATE_LIMITER": "redis://:s3cretpw@127.0.0.1:1/0"})
    proc = subprocess.run([GOGOKU, "cache", "refresh", "--sources", "topix", "--start", "2024-01-04",
                           "--end", "2024-01-31"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "JQUANTS_RATE_LIMITER=redis://:***@127.0.0.1:1/0: cannot reach Redis" in errors[0]
    assert "s3cretpw" not in proc.stderr + proc.stdout
    assert sim_server.stats()["total"] == 0  # refused before any request
    proc = subprocess.run([GOGOKU, "cache", "refresh", "--sources", "topix", "--start", "2024-01-04",
                           "--end", "2024-01-31"], env={**env, "JQUANTS_RATE_LIMITER": "localhost:6379"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "JQUANTS_RATE_LIMITER='localhost:6379': expected a Redis URL" in proc.stderr
