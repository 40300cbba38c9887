"""Dataset build benchmark: `gogoku dataset build --offline` from a warm raw cache, chunked and one shot.

Presets (the simulator's market; `--stocks/--start/--end` override them):
- small:     300 stocks, 2024-07-01 .. 2025-06-30;
- full:      4,000 stocks, 2020-07-01 .. 2025-06-30 (five years) plus the 620-day lookback;
- ten_years: 4,000 stocks, 2016-07-01 .. 2026-06-30 (ten years; the built-in simulator's market starts
  on 2016-01-04, so the lookback of the first year is partly empty).

The cache is filled first with `gogoku cache refresh` of every source the plan includes (not
timed, reported separately; a later run on the same `--data-root` starts warm). Then the build runs
out of core (`--chunk-months`, default 12) and, where it is expected to fit (`--one-shot auto`: an
estimate of 2.6 KB per stock-day under `--one-shot-max-gib`), in one shot (`--chunk-months 0`), one
after the other, each as its own process, timed, its peak RSS read from the OS (`ru_maxrss` of the
child). The two files are compared block by block of codes (never whole in memory). Prints JSON: wall
time, peak RSS, rows, features, groups of each build, their ratios and the comparison.
Goals here (2 cores): <= 6 GiB peak for any range out of core; time within 1.2x of the one shot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gogoku.contracts import LOOKBACK_DAYS

PRESETS = {
    "small": {"stocks": 300, "start": "2024-07-01", "end": "2025-06-30"},
    "full": {"stocks": 4000, "start": "2020-07-01", "end": "2025-06-30"},
    "ten_years": {"stocks": 4000, "start": "2016-07-01", "end": "2026-06-30"},
}
STANDARD_SOURCES = ("trading_calendar,listed_info,daily_quotes,topix,statements,announcement,trades_spec,"
                    "weekly_margin_interest,daily_margin_interest,short_selling,short_selling_positions,index_option")
# Peak of the one-shot build per stock-day of its range (measured: 11.77 GiB for 4,000 x 5 years, 620-day lookback).
ONE_SHOT_BYTES_PER_STOCK_DAY = 2600
SESSIONS_PER_YEAR = 245


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


def build(args: list[str], env: dict[str, str], out: Path) -> dict[str, Any]:
    result, wall, rss = gogoku([*args, "--out", str(out)], env)
    manifest = json.loads(Path(result["manifest"]).read_text())
    groups: dict[str, int] = {}
    for feature in manifest.get("features", []):
        groups[feature["group"]] = groups.get(feature["group"], 0) + 1
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2), "chunk_months": result.get("chunk_months"),
            "rows": result.get("rows"), "codes": result.get("codes"), "features": len(manifest.get("features", [])),
            "groups": groups, "absent_groups": sorted(manifest.get("absent_groups", {})), "file": result["uri"]}


def compare(a: str, b: str, codes_per_block: int = 200) -> dict[str, Any]:
    """Compare two dataset files block by block of codes: equal within float tolerance (polars'
    assert_frame_equal), and how many float cells differ at all."""
    import polars as pl
    from polars.testing import assert_frame_equal

    codes = pl.scan_parquet(a).select("Code").unique().collect().get_column("Code").sort().to_list()
    cells = rows = 0
    columns: set[str] = set()
    equal = pl.scan_parquet(a).collect_schema() == pl.scan_parquet(b).collect_schema()
    for i in range(0, len(codes), codes_per_block):
        lo, hi = codes[i], codes[min(i + codes_per_block, len(codes)) - 1]
        x, y = (pl.scan_parquet(f).filter(pl.col("Code").is_between(pl.lit(lo), pl.lit(hi))).collect() for f in (a, b))
        rows += x.height
        try:
            assert_frame_equal(x, y)
        except AssertionError:
            equal = False
        for c, t in x.schema.items():
            if t in (pl.Float32, pl.Float64) and c in y.columns:
                same = (x[c] == y[c]).fill_null(False) | (x[c].is_null() & y[c].is_null())
                n = x.height - int(same.sum())
                if n:
                    cells += n
                    columns.add(c)
    return {"frame_equal": equal, "rows": rows, "bitwise_different_cells": cells,
            "bitwise_different_columns": sorted(columns)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--stocks", type=int, default=None)
    parser.add_argument("--start", default=None)
    parser.add_argument("--end", default=None)
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--data-root", default=None, help="keep the cache here between runs (default: a temp dir)")
    parser.add_argument("--graph-step", type=int, default=5)
    parser.add_argument("--chunk-months", type=int, default=12, help="the out-of-core build's chunks")
    parser.add_argument("--one-shot", choices=("auto", "yes", "no"), default="auto",
                        help="also build in one shot: auto = where the estimate fits --one-shot-max-gib")
    parser.add_argument("--one-shot-max-gib", type=float, default=12.0)
    args = parser.parse_args(argv)
    preset = {**PRESETS[args.preset], **{k: v for k, v in
                                          (("stocks", args.stocks), ("start", args.start), ("end", args.end)) if v}}
    start, end = dt.date.fromisoformat(preset["start"]), dt.date.fromisoformat(preset["end"])
    history = (start - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()
    stock_days = preset["stocks"] * SESSIONS_PER_YEAR * ((end - start).days + 1) / 365.25
    one_shot_estimate = stock_days * ONE_SHOT_BYTES_PER_STOCK_DAY / 2**30
    with tempfile.TemporaryDirectory(prefix="gogoku-bench-dataset-") as tmp:
        root = Path(args.data_root or tmp)
        env = {**os.environ, "GOGOKU_DATA_ROOT": str(root), "GOGOKU_SIM_STOCKS": str(preset["stocks"]),
               "JQUANTS_PLAN_TIER": args.plan, "PYTHONUNBUFFERED": "1"}
        env.pop("JQUANTS_API_URL", None)
        print(f"filling the cache: {preset['stocks']} stocks, {history} .. {preset['end']} ...", file=sys.stderr)
        refresh, refresh_s, refresh_rss = gogoku(
            ["cache", "refresh", "--sources", STANDARD_SOURCES, "--start", history, "--end", preset["end"]], env)
        common = ["dataset", "build", "--start", preset["start"], "--end", preset["end"], "--plan", args.plan,
                  "--offline", "--graph-step", str(args.graph_step)]
        out = root / "bench_datasets"
        shutil.rmtree(out, ignore_errors=True)
        builds: dict[str, Any] = {}
        try:
            print(f"building {preset['start']} .. {preset['end']} in chunks of {args.chunk_months} months ...",
                  file=sys.stderr)
            builds["chunked"] = build([*common, "--chunk-months", str(args.chunk_months)], env, out / "chunked")
            if args.one_shot == "yes" or (args.one_shot == "auto" and one_shot_estimate <= args.one_shot_max_gib):
                print("building in one shot ...", file=sys.stderr)
                builds["one_shot"] = build([*common, "--chunk-months", "0"], env, out / "one_shot")
                print("comparing the two files ...", file=sys.stderr)
                builds["comparison"] = compare(builds["chunked"]["file"], builds["one_shot"]["file"])
                builds["ratio"] = {k: round(builds["chunked"][k] / builds["one_shot"][k], 2)
                                   for k in ("wall_s", "peak_rss_gib")}
            else:
                builds["one_shot"] = {"skipped": f"estimated peak {one_shot_estimate:.1f} GiB "
                                                 f"(> --one-shot-max-gib {args.one_shot_max_gib:g})"}
        finally:
            shutil.rmtree(out, ignore_errors=True)
    for b in builds.values():
        b.pop("file", None)
    result = {
        "preset": args.preset, **preset, "plan": args.plan,
        "cache_fill": {"wall_s": round(refresh_s, 1), "api_calls": refresh.get("api_calls"),
                       "peak_rss_gib": round(refresh_rss, 2)},
        **builds,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
