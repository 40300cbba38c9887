"""Training throughput of ATFT-GAT-FAN on synthetic data of realistic shape.

    .venv/bin/python bench/train.py                      # tiny + production, 300 stocks x 300 features, T=20
    .venv/bin/python bench/train.py --days 16 --configs atft_gat_fan --device cuda
    .venv/bin/python bench/train.py --configs atft_tiny --days 64 --prefetch 0,2   # batches built inline vs ahead

Each config runs in its own process (so peak memory is its own) through the real training path
(gogoku.train.atft.FoldTrainer: day batches with graphs, loss, AdamW, EMA, validation) for one
epoch over `--days` trading days, and prints one JSON object: parameters, samples/s (stock-days
per second of training), seconds, where the epoch went (waiting for batches, the copy to the device,
forward, backward, optimizer + EMA, validation; `not_model_share` = the first two over the epoch), the
graph building per day, peak memory (RSS on CPU, torch.cuda.max_memory_allocated on GPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time

import numpy as np
import polars as pl
import torch
from omegaconf import OmegaConf

from gogoku.calendar import business_days
from gogoku.model.gat_graph import GraphParams, daily_graphs, return_panel
from gogoku.train import atft
from gogoku.train.data import FoldNormalizer, Panel
from gogoku.train.run import compose_config

HORIZONS = (1, 5, 10, 20)


def synthetic(stocks: int, features: int, days: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dates = business_days(dt.date(2023, 1, 4), dt.date(2026, 12, 30))[:days]
    sector = np.arange(stocks) % 17
    returns = rng.normal(0, 0.008, (days, 1)) + rng.normal(0, 0.012, (days, 17))[:, sector] + rng.normal(0, 0.012, (days, stocks))
    x = rng.normal(size=(days * stocks, features)).astype(np.float32)
    cols = {f"f{i:03d}": x[:, i] for i in range(features - 1)}
    frame = pl.DataFrame({
        "Code": np.tile([f"{1300 + i:04d}0" for i in range(stocks)], days),
        "Date": np.repeat(np.array(dates, dtype="datetime64[D]"), stocks),
        "Sector33Code": np.tile(sector.astype(str), days),
        "returns_1d": returns.ravel().astype(np.float32), **cols,
    }).with_columns(pl.col("Date").cast(pl.Date))
    signal = x[:, 0]
    return frame.with_columns(
        pl.Series(f"target_{h}d", 0.01 * np.sqrt(h) * (0.1 * signal + rng.normal(size=days * stocks))) for h in HORIZONS
    )


def run_one(name: str, args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = OmegaConf.to_container(compose_config(name, [f"model.training.seq_len={args.seq_len}"]).model, resolve=True)
    training = cfg["training"]
    training.update(days_per_batch=args.days_per_batch, device=args.device, snapshots=1, patience=99,
                    prefetch=args.prefetch_one, profile=True, phases=[{"name": "full", "epochs": 1, "adaptive_norm": True, "gat": True}])
    lookback = cfg["graph"]["lookback"]
    total_days = lookback + args.days + 1
    df = synthetic(args.stocks, args.features, total_days)
    features = [c for c in df.columns if c not in ("Code", "Date", "Sector33Code") and not c.startswith("target_")]
    settings = atft.TrainSettings.from_mapping(training, seed=0)
    arch = atft.ATFTConfig.from_mapping(cfg["architecture"], n_features=len(features), horizons=HORIZONS, seq_len=args.seq_len)
    loss = atft.LossConfig.from_mapping(cfg["loss"], arch.quantiles, HORIZONS)
    t0 = time.perf_counter()
    panel = Panel(df, features, HORIZONS)
    panel.set_features(FoldNormalizer.fit(df, features, panel.dates[:lookback]), df)
    graph_params = GraphParams(**{k: v for k, v in cfg["graph"].items() if k != "return_col"})
    t1 = time.perf_counter()
    panel.graphs = daily_graphs(return_panel(df, panel.dates, panel.codes), range(lookback, total_days), graph_params,
                                sector=np.array([str(i % 17) for i in range(args.stocks)], dtype=object))
    graph_s = time.perf_counter() - t1
    edges = float(np.mean([g.edge_index.shape[1] for g in panel.graphs.values()]))
    fit_days = list(range(lookback, lookback + args.days))
    trainer = atft.FoldTrainer(panel, 0, fit_days, [total_days - 1], arch, loss, settings)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "config": name,
        "parameters": atft.count_parameters(trainer.model),
        "device": str(trainer.device) + (f" ({torch.cuda.get_device_name()})" if trainer.device.type == "cuda" else ""),
        "precision": "bf16" if trainer.autocast else "fp32",
        "stocks": args.stocks, "features": len(features), "seq_len": args.seq_len,
        "train_days": args.days, "days_per_batch": trainer.days_per_batch,
        "prefetch": settings.prefetch,
        "samples_per_s": round(trainer.history[-1]["samples_per_s"], 1),
        "epoch_seconds": round(seconds, 2),
        # Where the epoch went (the trainer's own clocks; CUDA synchronized around each part).
        "epoch_breakdown_s": {part: round(trainer.history[-1][f"time_{part}_s"], 3)
                              for part in (*atft.STEP_TIMES, "validate")},
        "not_model_share": round((trainer.history[-1]["time_data_s"] + trainer.history[-1]["time_transfer_s"])
                                 / max(trainer.history[-1]["epoch_s"], 1e-9), 4),
        "prepare_seconds": round(t1 - t0, 2),
        "graph_ms_per_day": round(1000 * graph_s / len(panel.graphs), 2),
        "graph_edges_per_day": round(edges, 1),
        "peak_memory_mb": round(peak / 2**20, 1),
        "peak_memory_kind": "cuda_max_allocated" if trainer.device.type == "cuda" else "rss",
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="atft_tiny,atft_gat_fan")
    p.add_argument("--stocks", type=int, default=300)
    p.add_argument("--features", type=int, default=300)
    p.add_argument("--seq-len", type=int, default=20)
    p.add_argument("--days", type=int, default=None, help="training days per config (default: 64 on GPU; on CPU 8 tiny, 2 production)")
    p.add_argument("--days-per-batch", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0 = torch default)")
    p.add_argument("--prefetch", default="2", help="batches built ahead in a background thread; a list (0,2) runs each")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--prefetch-one", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        if args.days is None:  # keeps the default CPU run near two minutes
            cuda = atft.resolve_device(args.device).type == "cuda"
            args.days = 64 if cuda else (2 if args.only == "atft_gat_fan" else 8)
        print(json.dumps(run_one(args.only, args)))
        return
    results = []
    for name in args.configs.split(","):
        for ahead in args.prefetch.split(","):
            cmd = [sys.executable, __file__, "--only", name, "--prefetch-one", ahead, *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                results.append({"config": name, "prefetch": int(ahead),
                                "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"})
            else:
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"bench": "train", "results": results}, indent=2))


if __name__ == "__main__":
    main()
