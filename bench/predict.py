"""Daily prediction benchmark: one market day's features and scores for the whole universe.

What the 08:30 JST `gogoku_daily` run does, each step as its own process (timed, its peak RSS read
from the OS, `ru_maxrss` of the child):
- `gogoku features daily --date D`: the day's features built incrementally from the raw cache (the
  sessions a model reads plus the features' lookback, not a dataset rebuild);
- `gogoku predict --date D --features <that file>`: the champion's scores and ranks of every listed
  stock;
- `gogoku predict --date D` alone (features built in the same process), the one-command path.

Set-up, not timed (a later run on the same `--data-root` starts warm): the raw cache over the
features' lookback and the training range is filled from the simulator (`--stocks`, default 4,000),
a dataset of `--train-months` is built, a LightGBM model is trained with refit on it, registered and
promoted (the champion). Prints JSON. Goal: each of the three steps <= 60 s and <= 4 GiB here.

    .venv/bin/python bench/predict.py [--data-root DIR] [--stocks 4000] [--date 2025-06-30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset import STANDARD_SOURCES, gogoku  # noqa: E402  (the bench folder's shared child-process runner)

from gogoku.contracts import LOOKBACK_DAYS  # noqa: E402

TRAIN = ["splits.n_splits=2", "splits.min_train=40", "splits.min_test=20", "splits.embargo=20",
         "model.num_boost_round=50", "refit=true"]
TARGET_S, TARGET_GIB = 60.0, 4.0


def setup(args: argparse.Namespace, env: dict[str, str], train_start: dt.date, history: str) -> str:
    """The cache, a dataset of the training range and its LightGBM model as the champion (not timed)."""
    gogoku(["cache", "refresh", "--sources", STANDARD_SOURCES, "--start", history, "--end", args.date], env)
    dataset, _, _ = gogoku(["dataset", "build", "--start", train_start.isoformat(), "--end", args.date,
                            "--plan", "standard", "--offline"], env)
    trained, _, _ = gogoku(["train", "--dataset", dataset["uri"], "--model", "lightgbm", *TRAIN], env)
    gogoku(["model", "register", "--model-dir", trained["model_dir"]], env)
    gogoku(["model", "promote", trained["model_dir"], "--force"], env)
    return str(trained["model_dir"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="data root (default: a new temp folder)")
    parser.add_argument("--stocks", type=int, default=4000)
    parser.add_argument("--date", default="2025-06-30", help="the market date predicted (a JPX session)")
    parser.add_argument("--train-months", type=int, default=6)
    parser.add_argument("--no-setup", action="store_true",
                        help="time the steps only, on a data root that a previous run set up (cache, champion)")
    args = parser.parse_args(argv)

    day = dt.date.fromisoformat(args.date)
    root = Path(args.data_root or tempfile.mkdtemp(prefix="gogoku-bench-predict-"))
    env = {**os.environ, "GOGOKU_DATA_ROOT": str(root), "GOGOKU_SIM_STOCKS": str(args.stocks),
           "JQUANTS_PLAN_TIER": "standard", "PYTHONUNBUFFERED": "1"}
    env.pop("JQUANTS_API_URL", None)  # the built-in simulator
    print(f"set-up: cache, dataset and champion for {args.stocks} stocks under {root} ...", file=sys.stderr)
    train_start = day - dt.timedelta(days=31 * args.train_months)
    history = (train_start - dt.timedelta(days=LOOKBACK_DAYS + 14)).isoformat()

    t0 = time.perf_counter()
    if args.no_setup:
        model = gogoku(["model", "list"], env)[0].get("champion")
    else:
        model = setup(args, env, train_start, history)
    setup_s = time.perf_counter() - t0

    features, features_s, features_gib = gogoku(["features", "daily", "--date", args.date], env)
    scored, score_s, score_gib = gogoku(["predict", "--date", args.date, "--features", features["uri"]], env)
    one, one_s, one_gib = gogoku(["predict", "--date", args.date], env)
    steps = {
        "features_daily": {"wall_s": round(features_s, 1), "peak_rss_gib": round(features_gib, 2),
                           "rows": features["rows"], "codes_on_day": features["codes_on_day"],
                           "features": features["features"]},
        "predict_from_features": {"wall_s": round(score_s, 1), "peak_rss_gib": round(score_gib, 2),
                                  "listed": scored["listed"], "scored": scored["scored"]},
        "predict_one_command": {"wall_s": round(one_s, 1), "peak_rss_gib": round(one_gib, 2),
                                "listed": one["listed"], "scored": one["scored"]},
    }
    report = {
        "scenario": {"stocks": args.stocks, "date": args.date, "plan": "standard", "model": model,
                     "train_range": [train_start.isoformat(), args.date], "data_root": str(root)},
        "setup_s": round(setup_s, 1),
        "steps": steps,
        "within_target": all(s["wall_s"] <= TARGET_S and s["peak_rss_gib"] <= TARGET_GIB for s in steps.values()),
        "target": {"wall_s": TARGET_S, "peak_rss_gib": TARGET_GIB},
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
