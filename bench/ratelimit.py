"""Rate-limit benchmark: concurrent `gogoku cache refresh` processes sharing one API key and plan limit.

Scenario (issue defaults): `gogoku sim serve` as its own process, enforcing the standard plan's 120
requests per window with 429 + Retry-After beyond it, but with a 6 s window and 12 requests
(`--rate-limit 12 --rate-window-s 6`: the plan's rate, 2 requests/s, ten windows in about a minute).
Four `gogoku cache refresh` processes start at once, each on its own source and date range (about 32
requests each) and its own data root, all with the same API key and JQUANTS_RATE_LIMIT /
JQUANTS_RATE_WINDOW_S set to the server's limit. Two runs against fresh servers:

1. shared: JQUANTS_RATE_LIMITER=redis://... (one budget for the four processes);
2. per_process: JQUANTS_RATE_LIMITER unset (today's bucket in each process).

For each run: requests and 429s from the server's `GET /__sim__/stats`, the processes' exit codes,
the wall time (first start to last exit), the span the server answered requests in (polled every 50 ms),
and the rate of answered (200) requests over that span against the plan's rate. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gogoku import calendar as cal
from gogoku.jquants.endpoints import endpoint
from gogoku.jquants.ratelimit import SAFETY, limiter_key

GOGOKU = str(Path(sys.executable).with_name("gogoku"))
API_KEY = "bench-ratelimit-key"
# Four standard-plan sources, one query per business day each.
SOURCES = ("daily_quotes", "statements", "indices", "daily_margin_interest")
FIRST_DAY = dt.date(2024, 1, 4)
POLL_S = 0.05


def day_ranges(n: int, days: int) -> list[tuple[dt.date, dt.date]]:
    """`n` consecutive ranges of `days` business days each, from FIRST_DAY."""
    business = cal.business_days(FIRST_DAY, FIRST_DAY + dt.timedelta(days=2 * n * days + 30))
    return [(business[i * days], business[(i + 1) * days - 1]) for i in range(n)]


def start_server(limit: int, window_s: float, stocks: int, end: dt.date, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """`gogoku sim serve` on a free port; returns the process and its URL (its first stdout line)."""
    proc = subprocess.Popen(
        [GOGOKU, "sim", "serve", "--plan", "standard", "--port", "0", "--api-key", API_KEY,
         "--rate-limit", str(limit), "--rate-window-s", str(window_s), "--stocks", str(stocks),
         "--start", "2023-10-02", "--end", str(end), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("gogoku sim serve exited before printing its URL")
    return proc, json.loads(line)["url"]


def warm_up(url: str, sources: list[str], day: dt.date) -> None:
    """One request per source, then a reset of the server's counts and rate window.

    The simulator builds a source's table on its first request, holding its event loop for up to a
    few hundred ms on a busy machine; requests queued behind that reach its rate check together, so
    with a short window (6 s x 5 % = 0.3 s of slack) the stall alone can make a 429. The real API has
    no such stall and its 60 s window leaves 3 s of slack: the benchmark measures the limiter, not this.
    """
    for source in sources:
        query = urllib.parse.urlencode({"date": day.isoformat()})
        req = urllib.request.Request(f"{url}{endpoint(source).path('v2')}?{query}", headers={"x-api-key": API_KEY})
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
    req = urllib.request.Request(f"{url}/__sim__/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/__sim__/stats", timeout=10) as resp:
        return json.loads(resp.read())


def refresh_env(url: str, limit: int, window_s: float, data_root: Path, limiter: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQUANTS_", "GOGOKU_"))}
    env.update({
        "JQUANTS_API_URL": url, "JQUANTS_API_KEY": API_KEY, "JQUANTS_PLAN_TIER": "standard",
        "JQUANTS_RATE_LIMIT": str(limit), "JQUANTS_RATE_WINDOW_S": str(window_s),
        "GOGOKU_DATA_ROOT": str(data_root),
    })
    if limiter is not None:
        env["JQUANTS_RATE_LIMITER"] = limiter
    return env


def run_refreshes(url: str, limit: int, window_s: float, limiter: str | None, processes: int,
                  days: int, workdir: Path) -> dict[str, Any]:
    """Start `processes` refreshes at once; poll the server until they exit; return the run's figures."""
    ranges = day_ranges(processes, days)
    warm_up(url, [SOURCES[i % len(SOURCES)] for i in range(processes)], ranges[0][0])
    procs = []
    t0 = time.perf_counter()
    for i in range(processes):
        source = SOURCES[i % len(SOURCES)]
        start, end = ranges[i]
        root = workdir / f"root{i}"
        cmd = [GOGOKU, "cache", "refresh", "--sources", source, "--start", str(start), "--end", str(end)]
        procs.append((source, start, end, subprocess.Popen(
            cmd, env=refresh_env(url, limit, window_s, root, limiter), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)))
    # (time, answered 200) whenever the count moved: the rate between the first and the last of these
    # is the throughput while requests flowed, apart from the processes' start-up.
    samples: list[tuple[float, int]] = []
    while any(p.poll() is None for *_, p in procs):
        ok = server_stats(url)["statuses"].get("200", 0)
        if ok and (not samples or ok > samples[-1][1]):
            samples.append((time.perf_counter(), ok))
        time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    stats = server_stats(url)
    outputs = []
    for source, start, end, p in procs:
        out, err = p.communicate()
        lines = out.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        outputs.append({"source": source, "start": str(start), "end": str(end), "exit": p.returncode,
                        "api_calls": result.get("api_calls"),
                        "error": result.get("error") or (err.strip().splitlines()[-1] if p.returncode and err.strip() else None)})
    ok = stats["statuses"].get("200", 0)
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else None
    rate = (samples[-1][1] - samples[0][1]) / span if span else None
    plan_rate = limit / window_s
    return {
        "limiter": "redis (shared)" if limiter else "in-process (per process)",
        "requests": stats["total"], "http_200": ok, "http_429": stats["statuses"].get("429", 0),
        "share_429": round(stats["statuses"].get("429", 0) / max(stats["total"], 1), 3),
        "statuses": stats["statuses"], "wall_s": round(wall, 2),
        "api_span_s": round(span, 2) if span else None,
        "rate_per_s": round(rate, 3) if rate else None,
        "plan_rate_per_s": round(plan_rate, 3),
        "rate_vs_plan": round(rate / plan_rate, 3) if rate else None,
        "processes": outputs,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=12, help="requests per window (the plan's 120 per minute, scaled)")
    parser.add_argument("--window-s", type=float, default=6.0, help="the server's window (60 = the real API)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--days", type=int, default=32, help="business days (one request each) per process")
    parser.add_argument("--stocks", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the shared limiter's Redis")
    parser.add_argument("--runs", default="shared,per_process", help="comma-separated: shared, per_process")
    args = parser.parse_args(argv)

    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    end = day_ranges(args.processes, args.days)[-1][1] + dt.timedelta(days=7)
    result: dict[str, Any] = {
        "scenario": {"plan": "standard", "server_limit": f"{args.limit} per {args.window_s:g}s",
                     "plan_rate_per_min": round(args.limit / args.window_s * 60), "processes": args.processes,
                     "requests_per_process": args.days, "sources": list(SOURCES[:args.processes]),
                     "latency_ms": args.latency_ms, "safety": SAFETY},
    }
    for run in runs:
        if run not in ("shared", "per_process"):
            raise SystemExit(f"--runs: unknown run {run!r}")
        server, url = start_server(args.limit, args.window_s, args.stocks, end, args.latency_ms)
        try:
            with tempfile.TemporaryDirectory(prefix="gogoku-bench-ratelimit-") as tmp:
                print(f"{run}: {args.processes} refreshes against {url} ...", file=sys.stderr, flush=True)
                result[run] = run_refreshes(url, args.limit, args.window_s, args.redis if run == "shared" else None,
                                            args.processes, args.days, Path(tmp))
        finally:
            server.terminate()
            server.wait(timeout=30)
            if run == "shared":
                import redis

                redis.Redis.from_url(args.redis).delete(limiter_key(url, f"v2:{API_KEY}"))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
