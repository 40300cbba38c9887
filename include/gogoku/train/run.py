"""`gogoku train`: compose the Hydra config, run a model walk-forward, save everything beside it.

The config folder is found in this order: $GOGOKU_CONFIG_DIR; the `configs/` folder of the source
tree this package runs from (a checkout or an editable install: <repo>/include/gogoku -> <repo>/configs);
`./configs` in the working directory. An image that installs the package non-editable sets
GOGOKU_CONFIG_DIR (or runs from the project folder).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import gogoku
from gogoku.config import Settings
from gogoku.dataset.manifest import read_manifest, resolve_dataset, validate_dataset
from gogoku.dataset.splits import Fold, walk_forward_splits
from gogoku.errors import InputError
from gogoku.io import atomic_write, write_json_atomic, write_latest_pointer, write_parquet_atomic

log = logging.getLogger(__name__)

PRIMARY_CONFIG = "train/config"
TRAINERS = ("lightgbm", "atft")  # model.trainer (default: model.name) -> the walk-forward trainer
HEADLINE = ("rank_ic_mean", "ic_mean", "rank_icir", "ls_sharpe", "n_days")


def config_dir() -> Path:
    """The Hydra config root (see the module docstring for the search order)."""
    env = os.environ.get("GOGOKU_CONFIG_DIR")
    candidates = [Path(env)] if env else [Path(gogoku.__file__).resolve().parents[2] / "configs", Path.cwd() / "configs"]
    for path in candidates:
        if (path / f"{PRIMARY_CONFIG}.yaml").is_file():
            return path.resolve()
    where = ", ".join(str(p) for p in candidates)
    raise InputError(f"no Hydra configs ({PRIMARY_CONFIG}.yaml) in {where}; set GOGOKU_CONFIG_DIR")


def compose_config(model: str, overrides: Sequence[str] = ()) -> DictConfig:
    root = config_dir()
    if not (root / "model" / f"{model}.yaml").is_file():
        known = sorted(p.stem for p in (root / "model").glob("*.yaml"))
        raise InputError(f"model {model!r}: no config {root / 'model' / model}.yaml (known: {', '.join(known)})")
    try:
        with initialize_config_dir(config_dir=str(root), version_base=None):
            return compose(config_name=PRIMARY_CONFIG, overrides=[f"model={model}", *overrides])
    except HydraException as exc:
        raise InputError(f"config overrides {list(overrides)}: {exc}") from None


def select_features(manifest: dict[str, Any], cfg: DictConfig) -> list[str]:
    groups = cfg.features.groups
    exclude = set(cfg.features.exclude or [])
    known = {f["group"] for f in manifest["features"]}
    if groups is not None:
        unknown = sorted(set(groups) - known)
        if unknown:
            raise InputError(f"features.groups: unknown group(s) {unknown} (dataset has {sorted(known)})")
    chosen = [
        f["name"]
        for f in manifest["features"]
        if (groups is None or f["group"] in groups) and f["name"] not in exclude
    ]
    if not chosen:
        raise InputError("features: the groups/exclude settings leave no feature")
    return chosen


def _train_lightgbm(
    df: pl.DataFrame, features: list[str], horizons: list[int], folds: list[Fold], cfg: DictConfig, out: Path
) -> tuple[pl.DataFrame, dict[str, Any]]:
    from gogoku.baselines.lightgbm import train_lightgbm  # each trainer imports its own library

    return train_lightgbm(
        df,
        features,
        horizons=horizons,
        folds=folds,
        params=OmegaConf.to_container(cfg.model.params, resolve=True),
        num_boost_round=int(cfg.model.num_boost_round),
        early_stopping_rounds=int(cfg.model.early_stopping_rounds),
        valid_fraction=float(cfg.validation.fraction),
        valid_embargo=int(cfg.validation.embargo),
        target_transform=cfg.model.target_transform,
        feature_transform=cfg.model.feature_transform,
        model_dir=out,
    )


@dataclass
class Prepared:
    """A training run's inputs: the dataset, the composed config and the walk-forward folds."""

    path: Path
    summary: dict[str, Any]
    cfg: DictConfig
    trainer: str
    horizons: list[int]
    features: list[str]
    df: pl.DataFrame
    folds: list[Fold]


def prepare(dataset: Path | None, model: str, overrides: Sequence[str] = (), settings: Settings | None = None) -> Prepared:
    """Resolve and validate the dataset, compose the config and split the dates into folds."""
    settings = settings or Settings.from_env()
    path = resolve_dataset(Path(dataset) if dataset is not None else settings.data_root / "datasets")
    summary = validate_dataset(path)
    manifest = read_manifest(path)
    cfg = compose_config(model, overrides)
    trainer = str(cfg.model.get("trainer", cfg.model.name))
    if trainer not in TRAINERS:
        raise InputError(f"model {cfg.model.name!r}: no trainer {trainer!r} in this version (available: {', '.join(TRAINERS)})")
    horizons = [int(h) for h in cfg.horizons]
    missing = [f"target_{h}d" for h in horizons if f"target_{h}d" not in manifest["targets"]]
    if missing:
        raise InputError(f"{path}: horizons {horizons} need target(s) {missing} that the dataset lacks")
    features = select_features(manifest, cfg)
    columns = ["Code", "Date", *features, *[f"target_{h}d" for h in horizons]]
    if trainer == "atft":
        # The graph needs the daily returns and the market / sector33 labels even when not features.
        available = pl.read_parquet_schema(path)
        wanted = ("MarketCode", "Sector33Code", str(cfg.model.graph.return_col))
        columns += [c for c in wanted if c in available and c not in columns]
    df = pl.read_parquet(path, columns=columns)
    folds = walk_forward_splits(df["Date"].unique().sort().to_list(), **OmegaConf.to_container(cfg.splits))

    return Prepared(path, summary, cfg, trainer, horizons, features, df, folds)


def train(
    dataset: Path | None,
    model: str = "lightgbm",
    out_dir: Path | None = None,
    overrides: Sequence[str] = (),
    only_folds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Train `model` on `dataset` (a file, a datasets folder, or None = <data_root>/datasets/latest).

    Writes into `out_dir` (default <data_root>/models/<model>_<dataset stem>_<UTC timestamp>/):
    the model files, metrics.json, predictions.parquet and the composed config.yaml.

    `only_folds` (neural models): train just those folds into `out_dir` and stop; processes may train
    different folds of one `out_dir` at the same time, and a run without `only_folds` on that folder
    then loads every finished fold and writes the metrics.
    """
    if only_folds is not None and out_dir is None:
        raise InputError("--fold needs --out (or --run-name): the model folder that a run without --fold assembles")
    settings = Settings.from_env()
    run = prepare(dataset, model, overrides, settings)
    path, summary, cfg, trainer, horizons, features, df, folds = (
        run.path, run.summary, run.cfg, run.trainer, run.horizons, run.features, run.df, run.folds)
    if only_folds is not None:
        if trainer != "atft":
            raise InputError(f"--fold: model {model!r} trains every fold in one run (folds apply to neural models)")
        known = [f.index for f in folds]
        unknown = sorted(set(only_folds) - set(known))
        if unknown:
            raise InputError(f"--fold {unknown}: this run's walk-forward folds are {known}")

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out_dir) if out_dir is not None else settings.data_root / "models" / f"{model}_{path.stem}_{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    log.info("training %s on %s (%d rows, %d features, %d folds) -> %s", model, path.name, df.height, len(features), len(folds), out)
    # Written first: a run stopped part-way (and resumed on the same --out) keeps its config beside it.
    atomic_write(out / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True)))
    if trainer == "atft":
        from gogoku.train.atft import train_atft  # torch is imported only for the models that need it

        predictions, metrics = train_atft(
            df,
            features,
            OmegaConf.to_container(cfg.model, resolve=True),
            horizons=horizons,
            folds=folds,
            seed=int(cfg.seed),
            valid_fraction=float(cfg.validation.fraction),
            valid_embargo=int(cfg.validation.embargo),
            model_dir=out,
            only_folds=only_folds,
        )
        if only_folds is not None:
            return {"model": model, "model_dir": str(out), "dataset": str(path), **metrics}
    else:
        predictions, metrics = _train_lightgbm(df, features, horizons, folds, cfg, out)
    metrics = {"dataset": str(path), "dataset_rows": summary["rows"], **metrics, "features": features}
    metrics_path = write_json_atomic(metrics, out / "metrics.json")
    predictions_path = write_parquet_atomic(predictions, out / "predictions.parquet")
    write_latest_pointer(out.parent, out, "model_dir", model=model, dataset=str(path))
    return {
        "model": model,
        "model_dir": str(out),
        "dataset": str(path),
        "metrics": str(metrics_path),
        "predictions": str(predictions_path),
        "n_features": len(features),
        "n_folds": len(folds),
        "headline": {h: {k: m.get(k) for k in HEADLINE} for h, m in metrics["horizons"].items()},
    }
