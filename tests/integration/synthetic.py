"""A synthetic dataset with a planted signal (for the tests of this folder): 30 codes, about 280
sessions, features `signal` and `noise`, targets 1d and 5d; variants with degenerate columns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from gogoku.dataset.manifest import make_manifest, write_dataset

DAYS = [dt.date(2024, 1, 4) + dt.timedelta(days=i) for i in range(400)
        if (dt.date(2024, 1, 4) + dt.timedelta(days=i)).weekday() < 5]
CODES = [f"{1300 + i}0" for i in range(30)]


def synthetic(kind: str = "good", seed: int = 3) -> tuple[pl.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    n = len(DAYS) * len(CODES)
    signal = rng.standard_normal(n)
    df = pl.DataFrame({
        "Code": np.repeat(CODES, len(DAYS)), "Date": DAYS * len(CODES),
        "signal": signal.astype(np.float32), "noise": rng.standard_normal(n).astype(np.float32),
        "target_1d": 0.02 * signal + 0.05 * rng.standard_normal(n), "target_5d": 0.05 * signal + 0.1 * rng.standard_normal(n),
    }).sort("Code", "Date")
    if kind == "null_features":
        df = df.with_columns(pl.lit(None, dtype=pl.Float32).alias("signal"), pl.lit(None, dtype=pl.Float32).alias("noise"))
    elif kind == "constant_target":
        df = df.with_columns(pl.lit(0.01).alias("target_5d"))
    manifest = make_manifest(df, groups={"price": ["signal", "noise"]}, targets=["target_1d", "target_5d"],
                             start=DAYS[0], end=DAYS[-1], plan="standard", build={"synthetic": True})
    return df, manifest


def write_synthetic_dataset(root: Path, kind: str = "good") -> Path:
    """Write it into `root`/datasets (its latest standard dataset); the parquet's path."""
    return write_dataset(*synthetic(kind), root / "datasets")[0]
