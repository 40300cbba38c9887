"""Fetch benchmark: the client and the raw cache against the simulator under a plan's rate limit.

Scenario (issue defaults): 1,000 stocks x 2 years of daily bars, statements and TOPIX from a
simulator server on 127.0.0.1 with 50 ms latency per request, enforcing the standard plan's
120 requests per minute (429 + Retry-After beyond it). Three runs through `RawCache.load`, the
path `gogoku cache refresh` takes:

1. cold: an empty cache; requests used vs the minimum possible (per source, the fewer of one
   query per business day or one per listed code, times the pages each needs), wall time vs the
   rate-limit bound (requests / limit x window), and the number of 429 answers;
2. warm: the same request again (0 requests expected) and its load time;
3. extended: the range extended by 10 calendar days (requests only for the new days).

Prints one JSON object. `--rate-window-s 6` runs the same scenario ten times faster (the limit is
then 120 requests per 6 s: the ratios are what matter).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from gogoku import calendar as cal
from gogoku.cache.raw import RawCache
from gogoku.cache.sources import CACHED_SOURCES
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.endpoints import endpoint
from gogoku.jquants.ratelimit import RateLimit
from gogoku.sim.market import SimMarket
from gogoku.sim.server import run_in_thread

API_KEY = "bench"


def minimum_requests(market: SimMarket, source: str, start: dt.date, end: dt.date, page_size: int) -> int:
    """The fewest API queries (pages included) that can return `source` for [start, end]."""
    spec = endpoint(source)
    frame = getattr(market, source)(start, end)
    pages = lambda rows: max(1, math.ceil(rows / page_size))  # noqa: E731
    if spec.axis.value == "range":
        return pages(frame.height)
    date_col = spec.date_column
    per_day = frame.group_by(date_col).len()
    counts = dict(zip(per_day[date_col].to_list(), per_day["len"].to_list(), strict=True))
    by_date = sum(pages(counts.get(d, 0)) for d in cal.business_days(start, end))
    if "code" not in spec.params:
        return by_date
    code_col = "LocalCode" if "LocalCode" in frame.columns else "Code"
    codes = market.listed_info()["Code"].unique()
    per_code = frame.group_by(code_col).len()
    rows_by_code = dict(zip(per_code[code_col].to_list(), per_code["len"].to_list(), strict=True))
    by_code = sum(pages(rows_by_code.get(c, 0)) for c in codes)
    return min(by_date, by_code)


def load_all(cache: RawCache, url: str, plan: str, limit: RateLimit, sources: list[str], start: dt.date,
             end: dt.date) -> dict[str, Any]:
    """Load every source through the cache; API requests counted by the client."""
    calls = {"n": 0}

    def fetcher(source: str):  # noqa: ANN202
        def fetch(a: dt.date, b: dt.date) -> pl.DataFrame:
            async def run() -> pl.DataFrame:
                async with JQuantsClient(url, api_key=API_KEY, plan=plan, rate_limit=limit) as client:
                    try:
                        return await client.fetch(source, a, b)
                    finally:
                        calls["n"] += client.api_calls

            return asyncio.run(run())

        return fetch

    t0 = time.perf_counter()
    rows = {}
    for source in sources:
        spec = CACHED_SOURCES[source]
        result = cache.load(source, start, end, fetcher(source), date_col=spec.date_col, key_cols=spec.key_cols)
        rows[source] = result.frame.height
    return {"requests": calls["n"], "wall_s": round(time.perf_counter() - t0, 3), "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 6, 30))
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rate-window-s", type=float, default=60.0,
                        help="the window of the plan's request limit (60 = the real API)")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--sources", default="daily_quotes,statements,topix")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    end = args.end
    start = end - dt.timedelta(days=round(365.25 * args.years)) + dt.timedelta(days=1)
    extended_end = end + dt.timedelta(days=10)
    t0 = time.perf_counter()
    market = SimMarket(seed=args.seed, n_stocks=args.stocks, start=start - dt.timedelta(days=60), end=extended_end)
    minimum = {s: minimum_requests(market, s, start, end, args.page_size) for s in sources}
    minimum_ext = {s: minimum_requests(market, s, end + dt.timedelta(days=1), extended_end, args.page_size)
                   for s in sources}
    setup_s = time.perf_counter() - t0
    limit = RateLimit.for_plan(args.plan, window_s=args.rate_window_s)

    server = run_in_thread(market, plan=args.plan, page_size=args.page_size, latency_ms=args.latency_ms,
                           rate_window_s=args.rate_window_s, today=extended_end)
    try:
        with tempfile.TemporaryDirectory(prefix="gogoku-bench-fetch-") as tmp:
            cache = RawCache(Path(tmp))
            print(f"cold fetch of {', '.join(sources)} {start}..{end}, {args.stocks} stocks, "
                  f"{limit.requests} requests per {limit.window_s:g}s ...", file=sys.stderr, flush=True)
            cold = load_all(cache, server.url, args.plan, limit, sources, start, end)
            cold_429 = server.stats()["statuses"].get("429", 0)
            warm = load_all(cache, server.url, args.plan, limit, sources, start, end)
            extended = load_all(cache, server.url, args.plan, limit, sources, start, extended_end)
            stats = server.stats()
    finally:
        server.stop()

    min_total = sum(minimum.values())
    bound_s = cold["requests"] / limit.requests * limit.window_s
    result = {
        "scenario": {"stocks": args.stocks, "start": str(start), "end": str(end), "sources": sources,
                     "plan": args.plan, "rate_limit": f"{limit.requests}/{limit.window_s:g}s",
                     "latency_ms": args.latency_ms, "page_size": args.page_size,
                     "simulator_setup_s": round(setup_s, 1)},
        "cold": {**cold, "minimum_requests": minimum, "minimum_total": min_total,
                 "requests_vs_minimum": round(cold["requests"] / min_total, 4),
                 "rate_limit_bound_s": round(bound_s, 1), "wall_vs_bound": round(cold["wall_s"] / bound_s, 3),
                 "http_429": cold_429},
        "warm": warm,
        "extended_10_days": {**extended, "end": str(extended_end), "minimum_requests": sum(minimum_ext.values())},
        "http_429_total": stats["statuses"].get("429", 0),
        "server_requests_total": stats["total"],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
