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
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import gogoku
from gogoku.config import Settings
from gogoku.dataset.manifest import MAX_NULL_FEATURE_SHARE, localize_dataset, read_manifest, validate_dataset
from gogoku.dataset.splits import Fold, walk_forward_splits
from gogoku.errors import InputError
from gogoku.io import atomic_write, write_json_atomic, write_latest_pointer, write_parquet_atomic

log = logging.getLogger(__name__)

PRIMARY_CONFIG = "train/config"
MODELS = "models"
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


def compose_config(model: str, overrides: Sequence[str] = (), model_config: Path | None = None) -> DictConfig:
    """The run's config: configs/train/config.yaml with configs/model/<model>.yaml, or with the model
    config file `model_config` (e.g. an HPO study's best, `hpo/<study>/model.yaml`), then `overrides`."""
    root = config_dir()
    with tempfile.TemporaryDirectory(prefix="gogoku-model-config-") as extra:
        search: list[str] = []
        if model_config is not None:
            if not Path(model_config).is_file():
                raise InputError(f"--model-config {model_config}: no such file")
            (Path(extra) / "model").mkdir()
            model = "model_config"
            shutil.copyfile(model_config, Path(extra) / "model" / f"{model}.yaml")
            search = [f"hydra.searchpath=[file://{extra}]"]
        elif not (root / "model" / f"{model}.yaml").is_file():
            known = sorted(p.stem for p in (root / "model").glob("*.yaml"))
            raise InputError(f"model {model!r}: no config {root / 'model' / model}.yaml (known: {', '.join(known)})")
        try:
            with initialize_config_dir(config_dir=str(root), version_base=None):
                return compose(config_name=PRIMARY_CONFIG, overrides=[*search, f"model={model}", *overrides])
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
    """A training run's inputs: the dataset (local file and URI), the composed config and the folds."""

    path: Path
    uri: str
    summary: dict[str, Any]
    cfg: DictConfig
    trainer: str
    horizons: list[int]
    features: list[str]
    df: pl.DataFrame
    folds: list[Fold]


def prepare(dataset: str | Path | None, model: str, overrides: Sequence[str] = (),
            settings: Settings | None = None, model_config: str | None = None) -> Prepared:
    """Resolve (a URI, a path, or None/`latest`: the newest dataset of the plan tier), fetch and
    validate the dataset, compose the config and split the dates into folds."""
    settings = settings or Settings.from_env()
    path, uri = localize_dataset(settings.store, None if dataset is None else str(dataset), settings.plan_tier)
    cfg = compose_config(model, overrides, settings.store.localize(model_config) if model_config else None)
    summary = validate_dataset(path, float(cfg.validation.get("max_null_feature_share", MAX_NULL_FEATURE_SHARE)))
    manifest = read_manifest(path)
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

    return Prepared(path, uri, summary, cfg, trainer, horizons, features, df, folds)


FINAL = "final"  # the production model's folder inside a run (refit=true)


def _refit(run: Prepared, metrics: dict[str, Any], folder: Path, on_epoch: Callable[[], None]) -> dict[str, Any]:
    """Fit the production model on every labelled row of the dataset and describe it in
    `final/model.json`: what a prediction needs (kind, features, horizons) and how it was judged."""
    cfg, horizons = run.cfg, run.horizons
    folder.mkdir(parents=True, exist_ok=True)
    log.info("refit: the production model on every labelled date of %s", run.uri)
    if run.trainer == "atft":
        from gogoku.train.atft import fit_final

        info = fit_final(run.df, run.features, OmegaConf.to_container(cfg.model, resolve=True), horizons,
                         seed=int(cfg.seed), valid_fraction=float(cfg.validation.fraction),
                         valid_embargo=int(cfg.validation.embargo), folder=folder,
                         on_epoch_end=lambda fold, epoch, entry: on_epoch())
    else:
        from gogoku.baselines.lightgbm import fit_final

        # As many rounds as the walk-forward early stopping chose (the median over the folds).
        rounds = {h: int(np.median([f["best_iteration"] for f in metrics["horizons"][f"{h}d"]["folds"]]))
                  for h in horizons}
        info = fit_final(run.df, run.features, horizons, rounds, OmegaConf.to_container(cfg.model.params, resolve=True),
                         target_transform=cfg.model.target_transform, feature_transform=cfg.model.feature_transform,
                         folder=folder)
    labelled = run.df.filter(pl.any_horizontal(pl.col(f"target_{h}d").is_not_null() for h in horizons))["Date"]
    manifest = read_manifest(run.path)
    description = {
        "kind": run.trainer, "model": str(cfg.model.name), "features": run.features, "horizons": horizons,
        "dataset": run.uri, "plan": manifest.get("plan"), "trained_from": str(labelled.min()),
        "trained_through": str(labelled.max()), "data_end": str(run.df["Date"].max()),
        "refit": info, "code_version": gogoku.code_version(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "walk_forward": {h: {k: m.get(k) for k in ("rank_ic_mean", "rank_ic_mean_ci", "ls_sharpe_net")}
                         for h, m in metrics["horizons"].items()},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json_atomic(description, folder / "model.json")
    return {k: description[k] for k in ("kind", "trained_from", "trained_through", "refit")}


def train(
    dataset: str | Path | None,
    model: str = "lightgbm",
    out_dir: Path | None = None,
    overrides: Sequence[str] = (),
    only_folds: Sequence[int] | None = None,
    run_name: str | None = None,
    settings: Settings | None = None,
    model_config: str | None = None,
) -> dict[str, Any]:
    """Train `model` on `dataset` (a URI or path, or None/`latest`: the newest dataset of the plan).

    Writes into `<data root>/models/<run_name>` (default name <model>_<dataset stem>_<UTC timestamp>),
    or into the local folder `out_dir`: the model files, metrics.json, predictions.parquet and the
    composed config.yaml. On an object-store root the folder is fetched first (to resume, or to
    assemble folds trained elsewhere), each fold's checkpoint is published after every epoch and
    the folder after the run, metrics.json last, then `models/latest.json`.

    `only_folds` (neural models): train just those folds and stop; processes (pods) may train
    different folds of one folder at the same time, and a run without `only_folds` on that folder
    then loads every finished fold and writes the metrics.
    """
    if only_folds is not None and out_dir is None and run_name is None:
        raise InputError("--fold needs --out (or --run-name): the model folder that a run without --fold assembles")
    settings = settings or Settings.from_env()
    store = settings.store
    run = prepare(dataset, model, overrides, settings, model_config)
    model = str(run.cfg.model.name)
    path, summary, cfg, trainer, horizons, features, df, folds = (
        run.path, run.summary, run.cfg, run.trainer, run.horizons, run.features, run.df, run.folds)
    if only_folds is not None:
        if trainer != "atft":
            raise InputError(f"--fold: model {model!r} trains every fold in one run (folds apply to neural models)")
        known = [f.index for f in folds]
        unknown = sorted(set(only_folds) - set(known))
        if unknown:
            raise InputError(f"--fold {unknown}: this run's walk-forward folds are {known}")

    rel: str | None = None  # the folder's place in the data root (None: a local --out folder)
    if out_dir is not None:
        out = Path(out_dir)
    else:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        rel = f"{MODELS}/{run_name or f'{model}_{path.stem}_{stamp}'}"
        out = store.fetch_tree(rel)  # an object store: what earlier attempts or fold tasks published
    out.mkdir(parents=True, exist_ok=True)
    where = store.uri(rel) if rel is not None else str(out)
    log.info("training %s on %s (%d rows, %d features, %d folds) -> %s", model, run.uri, df.height, len(features),
             len(folds), where)

    def publish(sub: str = "", last: Sequence[str] = ()) -> None:
        if rel is not None:
            store.publish_tree(f"{rel}/{sub}".rstrip("/"), last=last)

    # Written first: a run stopped part-way (and resumed on the same --out) keeps its config beside it.
    atomic_write(out / "config.yaml", lambda tmp: tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True)))
    if rel is not None:
        store.publish(f"{rel}/config.yaml")
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
            # Each epoch's checkpoint reaches the store, so a retried pod resumes where this one stopped.
            on_epoch_end=lambda fold, epoch, entry: publish(f"checkpoints/fold{fold}"),
        )
        if only_folds is not None:
            publish(last=["result.json"])
            return {"model": model, "model_dir": where, "dataset": run.uri, **metrics}
    else:
        predictions, metrics = _train_lightgbm(df, features, horizons, folds, cfg, out)
    if cfg.get("refit"):
        metrics["refit"] = _refit(run, metrics, out / FINAL, lambda: publish(f"{FINAL}/checkpoint"))
    metrics = {"dataset": run.uri, "dataset_rows": summary["rows"], **metrics, "features": features}
    write_parquet_atomic(predictions, out / "predictions.parquet")
    write_json_atomic(metrics, out / "metrics.json")  # the run's completion marker: written and published last
    publish(last=["metrics.json"])
    if rel is not None:
        store.write_json(f"{MODELS}/latest.json", {"model_dir": Path(rel).name, "model": model, "dataset": run.uri})
    else:
        write_latest_pointer(out.parent, out, "model_dir", model=model, dataset=run.uri)
    return {
        "model": model,
        "model_dir": where,
        "dataset": run.uri,
        "metrics": f"{where}/metrics.json",
        "predictions": f"{where}/predictions.parquet",
        "n_features": len(features),
        "n_folds": len(folds),
        "headline": {h: {k: m.get(k) for k in HEADLINE} for h, m in metrics["horizons"].items()},
    }
