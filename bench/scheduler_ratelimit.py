"""The shared J-Quants request budget under the real scheduler: one gogoku_cache_refresh run whose
refresh tasks (pool `jquants_api`, 4 slots) run at once through the Redis limiter.

Starts `gogoku sim serve` (a scaled standard-plan limit: --rate-limit requests per --rate-window-s)
and a throw-away deployment (`scripts/deployment.py up` on a fresh PostgreSQL database, LocalExecutor,
the Variable gogoku_rate_limiter on Redis), both from tests/scheduler/sched_harness.py, triggers the
refresh through the REST API for an uncached window and prints one JSON object: requests, 429s, the
refresh tasks at once, the API calls per task, and the rate of answered requests against the
enforced rate: `rate_vs_plan` while refresh tasks wanted the API (the limiter aims 5 % below the
plan; `shared_s`: the part of that time two or more did), `overall_rate_vs_plan` from the run's first
answer to its last (task start-up gaps included). The deployment, its databases and the simulator are removed at the end, whatever happens.

    python bench/scheduler_ratelimit.py [--rate-limit 48] [--rate-window-s 12] [--date 2022-10-14]
        [--window-days 120] [--plan premium]

Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 (bash .ci/run starts both).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scheduler"))

from sched_harness import (  # noqa: E402
    RATE_LIMIT,
    RATE_WINDOW_S,
    measure_refresh_rate,
    missing_services,
    start_deployment,
    start_simulator,
    unpause_refresh,
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-limit", type=int, default=RATE_LIMIT, help="the simulator's requests per window")
    parser.add_argument("--rate-window-s", type=float, default=RATE_WINDOW_S, help="the simulator's window")
    parser.add_argument("--date", default="2022-10-14", help="the refresh's market date (an uncached window)")
    parser.add_argument("--window-days", type=int, default=120, help="calendar days the refresh covers")
    parser.add_argument("--plan", default="premium", help="the plan tier of the run (its sources)")
    args = parser.parse_args(argv)
    missing = missing_services()
    if missing:
        sys.exit(f"scheduler_ratelimit: needs {', '.join(missing)} (bash .ci/run starts PostgreSQL and Redis)")
    work = Path(tempfile.mkdtemp(prefix="gogoku-bench-sched-"))
    t0 = time.monotonic()
    sim = start_simulator(work, args.rate_limit, args.rate_window_s)
    deployment = None
    try:
        deployment = start_deployment(sim, work / "deploy")
        # Switching the DAG on starts the run of the latest 08:00 Tokyo (catchup off): let it end first.
        unpause_refresh(deployment.rest)
        figures = measure_refresh_rate(deployment.rest, sim, date=args.date, window_days=args.window_days,
                                       plan=args.plan)
        figures["deployment_start_s"] = round(deployment.started_s, 1)
        figures["logs"] = str(deployment.dir / "logs")
    finally:
        if deployment is not None:
            deployment.stop()
        sim.stop()
    figures["bench_wall_s"] = round(time.monotonic() - t0, 1)
    return figures


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
