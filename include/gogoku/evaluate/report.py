"""A readable summary of a training run: the dataset, the models' test-fold metrics per horizon and,
for simulator data, the oracle (the planted expected returns) as the ceiling to read them against."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from gogoku.errors import InputError
from gogoku.evaluate.metrics import evaluate_predictions
from gogoku.io import read_latest_pointer


def resolve_model_dir(value: str | Path, data_root: Path) -> Path:
    if str(value) in ("", "latest"):
        return read_latest_pointer(data_root / "models", "model_dir")
    path = Path(value)
    if not (path / "metrics.json").is_file():
        raise InputError(f"--model-dir {value}: no metrics.json there")
    return path


def oracle_metrics(manifest: dict[str, Any], predictions: pl.DataFrame, horizons: list[int]) -> dict[str, Any] | None:
    """Test-fold metrics of the simulator's planted expected returns on the same (Code, Date) rows."""
    origin = manifest.get("origin") or {}
    if origin.get("api") != "simulator":
        return None
    from gogoku.jquants.market import SimMarket

    end = dt.date.fromisoformat(manifest["range"]["end"])
    truth = SimMarket(seed=int(origin["seed"]), n_stocks=int(origin["stocks"]), end=end).truth()
    joined = predictions.join(truth, on=["Code", "Date"], how="inner")
    return {
        f"{h}d": evaluate_predictions(joined, f"exp_ret_{h}d", f"target_{h}d", horizon_days=h) for h in horizons
    }


def summarize_run(model_dir: Path) -> dict[str, Any]:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    dataset = Path(metrics["dataset"])
    manifest_file = dataset.with_name(dataset.stem + ".manifest.json")
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    horizons = [int(h.rstrip("d")) for h in metrics["horizons"]]
    config_file = model_dir / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    models = {metrics["model"]: metrics["horizons"]}
    predictions_file = model_dir / "predictions.parquet"
    if manifest and predictions_file.is_file():
        oracle = oracle_metrics(manifest, pl.read_parquet(predictions_file), horizons)
        if oracle is not None:
            models["oracle (planted)"] = oracle
    return {
        "model_dir": str(model_dir),
        "dataset": str(dataset),
        "rows": manifest.get("rows", metrics.get("dataset_rows")),
        "codes": manifest.get("codes"),
        "range": manifest.get("range"),
        "plan": manifest.get("plan"),
        "n_features": manifest.get("n_features", metrics.get("n_features")),
        "feature_groups": manifest.get("feature_groups"),
        "n_folds": len(metrics.get("folds", [])),
        "embargo": (config.get("splits") or {}).get("embargo"),
        "horizons": horizons,
        "models": models,
    }


def format_summary(summary: dict[str, Any]) -> str:
    rng = summary.get("range") or {}
    groups = summary.get("feature_groups") or {}
    lines = [
        "gogoku run summary",
        f"  dataset   {summary['dataset']}",
        f"  rows      {summary['rows']:,} ({summary.get('codes') or '?'} codes, {rng.get('start')} .. {rng.get('end')}, "
        f"plan {summary.get('plan')})",
        f"  features  {summary['n_features']}" + (f" ({', '.join(f'{g} {n}' for g, n in groups.items())})" if groups else ""),
        f"  model dir {summary['model_dir']}",
        f"  evaluation: {summary['n_folds']} walk-forward test folds only, embargo {summary.get('embargo')} trading days",
        "",
    ]
    cols = [f"{h}d" for h in summary["horizons"]]
    for title, key in (("RankIC (mean daily)", "rank_ic_mean"), ("RankIC IR", "rank_icir"),
                       ("Long-short quintile Sharpe (gross)", "ls_sharpe")):
        lines.append(f"  {title}")
        lines.append("  " + f"{'model':<18}" + "".join(f"{c:>9}" for c in cols))
        for name, per_h in summary["models"].items():
            cells = "".join(f"{_fmt(per_h.get(c, {}).get(key)):>9}" for c in cols)
            lines.append("  " + f"{name:<18}" + cells)
        lines.append("")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return "-" if x is None or x != x else f"{x:.4f}" if abs(x) < 10 else f"{x:.2f}"


def print_summary(model_dir: str | Path, data_root: Path) -> dict[str, Any]:
    summary = summarize_run(resolve_model_dir(model_dir, data_root))
    print(format_summary(summary), flush=True)
    return {
        "model_dir": summary["model_dir"], "dataset": summary["dataset"], "rows": summary["rows"],
        "features": summary["n_features"],
        "rank_ic": {m: {h: v.get("rank_ic_mean") for h, v in per_h.items()} for m, per_h in summary["models"].items()},
    }
