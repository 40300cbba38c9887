"""bench/fetch.py on a small scenario: its request accounting (not its timings) is what the suite checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fetch.py"


def run_bench(*argv: str) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_fetch", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


def test_cold_warm_and_extended_runs_use_the_minimum_requests() -> None:
    # More stocks than business days: one query per day is the minimum, the axis the cache refresh takes.
    result = run_bench("--stocks", "60", "--years", "0.12", "--rate-window-s", "1", "--latency-ms", "5")
    cold = result["cold"]
    assert cold["requests"] == cold["minimum_total"] > 40  # one per business day for quotes and statements
    assert cold["http_429"] == 0 and result["http_429_total"] == 0
    assert result["warm"]["requests"] == 0 and result["warm"]["rows"] == cold["rows"]
    extended = result["extended_10_days"]
    assert extended["requests"] == extended["minimum_requests"] > 0
    assert extended["rows"]["daily_quotes"] > cold["rows"]["daily_quotes"]
