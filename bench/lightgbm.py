"""LightGBM training benchmark: where a walk-forward run's time goes, and its peak memory.

`.venv/bin/python bench/lightgbm.py --dataset PATH [--threads 2] [overrides ...]` runs
`gogoku train --model lightgbm` on the dataset as its own process (peak RSS from the OS) and prints,
from the run's metrics, per fold: the rows, the one binning of the fold's rows (`bin_s`), and per
horizon the rounds boosted (early stopping's best iteration plus its patience), the seconds spent
making the horizon's datasets, boosting and predicting, and the seconds per round; then the totals.
The dataset's matrix size (rows x features x 4 bytes) is printed beside the peak RSS.
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a dataset parquet file (its manifest beside it)")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM threads (model.params.num_threads)")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for gogoku train")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gogoku-bench-lightgbm-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "gogoku.cli", "train", "--dataset", args.dataset, "--model", "lightgbm",
               "--out", str(out), f"model.params.num_threads={args.threads}", *args.overrides]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed")
        metrics = json.loads((out / "metrics.json").read_text())
    horizons = list(metrics["horizons"])
    folds = []
    for i, info in enumerate(metrics["folds"]):
        per_h = {}
        for h in horizons:
            f = metrics["horizons"][h]["folds"][i]
            rounds = f.get("rounds") or 0
            per_h[h] = {"rounds": rounds, "best_iteration": f.get("best_iteration"), "datasets_s": f.get("datasets_s"),
                        "boost_s": f.get("boost_s"), "predict_s": f.get("predict_s"),
                        "s_per_round": round(f["boost_s"] / rounds, 3) if rounds and f.get("boost_s") else None}
        folds.append({"fold": info["fold"], "fit_rows": info["fit_rows"], "valid_rows": info["valid_rows"],
                      "test_rows": info["test_rows"], "bin_s": info.get("bin_s"),
                      "fold_s": round((info.get("bin_s") or 0) + sum((v["datasets_s"] or 0) + (v["boost_s"] or 0)
                                                                     + (v["predict_s"] or 0) for v in per_h.values()), 1),
                      "horizons": per_h})
    rows, features = metrics["dataset_rows"], metrics["n_features"]
    result = {
        "dataset": args.dataset, "rows": rows, "features": features, "threads": args.threads,
        "matrix_gib": round(rows * features * 4 / 2**30, 2), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
        "wall_s": round(wall, 1),
        "bin_s": round(sum(f["bin_s"] or 0 for f in folds), 1),
        "datasets_s": round(sum(v["datasets_s"] or 0 for f in folds for v in f["horizons"].values()), 1),
        "boost_s": round(sum(v["boost_s"] or 0 for f in folds for v in f["horizons"].values()), 1),
        "rounds": sum(v["rounds"] for f in folds for v in f["horizons"].values()),
        "folds": folds,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
