"""Dataset build benchmark: `gogoku dataset build --offline` from a warm raw cache.

Presets (the simulator's market; `--stocks/--start/--end` override them):
- small: 300 stocks, 2024-07-01 .. 2025-06-30;
- full:  4,000 stocks, 2020-07-01 .. 2025-06-30 (five years) plus the 420-day lookback.

The cache is filled first with `gogoku cache refresh` of every source the plan includes (not
timed, reported separately; a later run on the same `--data-root` starts warm), then the build runs
as its own process, timed, its peak RSS read from the OS (`ru_maxrss` of the child). Prints JSON:
wall time, peak RSS, rows, feature count, groups. Goal here (2 cores): full <= 10 min, <= 10 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PRESETS = {
    "small": {"stocks": 300, "start": "2024-07-01", "end": "2025-06-30"},
    "full": {"stocks": 4000, "start": "2020-07-01", "end": "2025-06-30"},
}
LOOKBACK_DAYS = 420
STANDARD_SOURCES = ("trading_calendar,listed_info,daily_quotes,topix,statements,announcement,trades_spec,"
                    "weekly_margin_interest,daily_margin_interest,short_selling,short_selling_positions,index_option")


def gogoku(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """Run `gogoku ARGS` as a child; (its JSON result, wall seconds, the child's own peak RSS in GiB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "gogoku.cli", *args], env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage alone
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"gogoku {' '.join(args)} failed with status {proc.returncode}")
        lines = [line for line in out.read().splitlines() if line.strip()]
    return json.loads(lines[-1]), wall, usage.ru_maxrss / 2**20  # KiB -> GiB


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--stocks", type=int, default=None)
    parser.add_argument("--start", default=None)
    parser.add_argument("--end", default=None)
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--data-root", default=None, help="keep the cache here between runs (default: a temp dir)")
    parser.add_argument("--graph-step", type=int, default=5)
    args = parser.parse_args(argv)
    preset = {**PRESETS[args.preset], **{k: v for k, v in
                                          (("stocks", args.stocks), ("start", args.start), ("end", args.end)) if v}}

    import datetime as dt

    history = (dt.date.fromisoformat(preset["start"]) - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()
    with tempfile.TemporaryDirectory(prefix="gogoku-bench-dataset-") as tmp:
        root = Path(args.data_root or tmp)
        env = {**os.environ, "GOGOKU_DATA_ROOT": str(root), "GOGOKU_SIM_STOCKS": str(preset["stocks"]),
               "JQUANTS_PLAN_TIER": args.plan, "PYTHONUNBUFFERED": "1"}
        env.pop("JQUANTS_API_URL", None)
        print(f"filling the cache: {preset['stocks']} stocks, {history} .. {preset['end']} ...", file=sys.stderr)
        refresh, refresh_s, refresh_rss = gogoku(
            ["cache", "refresh", "--sources", STANDARD_SOURCES, "--start", history, "--end", preset["end"]], env)
        print(f"building {preset['start']} .. {preset['end']} offline ...", file=sys.stderr)
        build, build_s, build_rss = gogoku(
            ["dataset", "build", "--start", preset["start"], "--end", preset["end"], "--plan", args.plan,
             "--offline", "--graph-step", str(args.graph_step)], env)
        manifest = json.loads(Path(build["manifest"]).read_text())
    groups: dict[str, int] = {}
    for feature in manifest.get("features", []):
        groups[feature["group"]] = groups.get(feature["group"], 0) + 1
    result = {
        "preset": args.preset, **preset, "plan": args.plan,
        "cache_fill": {"wall_s": round(refresh_s, 1), "api_calls": refresh.get("api_calls"),
                       "peak_rss_gib": round(refresh_rss, 2)},
        "build": {"wall_s": round(build_s, 1), "peak_rss_gib": round(build_rss, 2), "rows": build.get("rows"),
                  "codes": build.get("codes"), "features": len(manifest.get("features", [])),
                  "groups": groups,
                  "absent_groups": sorted(manifest.get("absent_groups", {}))},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
