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

import polars as pl
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import gogoku
from gogoku.config import Settings
from gogoku.dataset.manifest import MAX_NULL_FEATURE_SHARE, localize_dataset, read_manifest, validate_dataset
from gogoku.dataset.splits import Fold, sort_columnwise, walk_forward_splits
from gogoku.errors import InputError
from gogoku.io import atomic_write, write_json_atomic, write_latest_pointer, write_parquet_atomic
from gogoku.train.walkforward import FINAL_FOLD, load_class, run_walk_forward

log = logging.getLogger(__name__)

PRIMARY_CONFIG = "train/config"
MODELS = "models"
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


def model_class(cfg: DictConfig) -> Any:
    """The walk-forward model class a config names in `model._target_` (e.g.
    gogoku.baselines.lightgbm.LightGBMModel); adding a model is a config file and such a class."""
    target = cfg.model.get("_target_")
    if not target:
        raise InputError(f"model {cfg.model.name!r}: its config sets no _target_ (the model class)")
    try:
        return load_class(str(target))
    except InputError as exc:
        raise InputError(f"model {cfg.model.name!r}: {exc}") from None


def build_model(cfg: DictConfig, on_epoch_end: Callable[[int, int, dict[str, Any]], None] | None = None) -> Any:
    """The run's model: `model_class(cfg).from_config(cfg, on_epoch_end)` (the hook runs after each
    epoch of an iteratively trained model, e.g. to publish its checkpoint)."""
    return model_class(cfg).from_config(cfg, on_epoch_end=on_epoch_end)


@dataclass
class Prepared:
    """A training run's inputs: the dataset (local file and URI), the composed config and the folds."""

    path: Path
    uri: str
    summary: dict[str, Any]
    cfg: DictConfig
    model_class: Any
    horizons: list[int]
    features: list[str]
    df: pl.DataFrame
    folds: list[Fold]


def prepare(dataset: str | Path | None, model: str, overrides: Sequence[str] = (),
            settings: Settings | None = None, model_config: str | None = None, dates_only: bool = False) -> Prepared:
    """Resolve (a URI, a path, or None/`latest`: the newest dataset of the plan tier), fetch and
    validate the dataset, compose the config and split the dates into folds. `dates_only`: read only
    the Date column (enough for the folds)."""
    settings = settings or Settings.from_env()
    path, uri = localize_dataset(settings.store, None if dataset is None else str(dataset), settings.plan_tier)
    cfg = compose_config(model, overrides, settings.store.localize(model_config) if model_config else None)
    # A plan reads no values: the run that trains validates them.
    summary = {} if dates_only else validate_dataset(
        path, float(cfg.validation.get("max_null_feature_share", MAX_NULL_FEATURE_SHARE)))
    manifest = read_manifest(path)
    cls = model_class(cfg)
    horizons = [int(h) for h in cfg.horizons]
    missing = [f"target_{h}d" for h in horizons if f"target_{h}d" not in manifest["targets"]]
    if missing:
        raise InputError(f"{path}: horizons {horizons} need target(s) {missing} that the dataset lacks")
    features = select_features(manifest, cfg)
    columns = ["Code", "Date", *features, *[f"target_{h}d" for h in horizons]]
    if hasattr(cls, "extra_columns"):  # e.g. what the daily graphs need even when not features
        available = pl.read_parquet_schema(path)
        wanted = cls.extra_columns(OmegaConf.to_container(cfg.model, resolve=True))
        columns += [c for c in wanted if c in available and c not in columns]
    df = pl.read_parquet(path, columns=["Date"] if dates_only else columns)
    if not dates_only and getattr(cls, "row_order", None):
        df = sort_columnwise(df, cls.row_order)  # the order its folds slice
    folds = walk_forward_splits(df["Date"].unique().sort().to_list(), **OmegaConf.to_container(cfg.splits))

    return Prepared(path, uri, summary, cfg, cls, horizons, features, df, folds)


FINAL = "final"  # the production model's folder inside a run (refit=true)


def _refit(run: Prepared, model: Any, metrics: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Fit the production model on every labelled row of the dataset and describe it in
    `final/model.json`: what a prediction needs (kind, features, horizons) and how it was judged."""
    cfg, horizons = run.cfg, run.horizons
    folder.mkdir(parents=True, exist_ok=True)
    log.info("refit: the production model on every labelled date of %s", run.uri)
    info = model.fit_final(run.df, run.features, horizons, folder, metrics)
    labelled = run.df.filter(pl.any_horizontal(pl.col(f"target_{h}d").is_not_null() for h in horizons))["Date"]
    manifest = read_manifest(run.path)
    description = {
        "kind": model.kind, "model": str(cfg.model.name), "features": run.features, "horizons": horizons,
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


def plan(dataset: str | Path | None, model: str = "lightgbm", overrides: Sequence[str] = (),
         settings: Settings | None = None, model_config: str | None = None) -> dict[str, Any]:
    """`gogoku train --plan-only`: what a run with these arguments would train, without training: its
    walk-forward folds (index and date ranges), whether they can train as separate tasks, the pod
    profile (`model.pod_profile`) and the dataset. Reads the config and the dataset's Date column."""
    run = prepare(dataset, model, overrides, settings, model_config, dates_only=True)
    return {
        "model": str(run.cfg.model.name),
        "kind": run.model_class.kind,
        "dataset": run.uri,
        "folds": [{"fold": f.index, "train_start": str(f.train_dates[0]), "test_start": str(f.test_dates[0]),
                   "test_end": str(f.test_dates[-1])} for f in run.folds],
        "n_folds": len(run.folds),
        "fold_parallel": bool(run.model_class.fold_parallel),
        "profile": str(run.cfg.model.get("pod_profile", "cpu")),
        "refit": bool(run.cfg.get("refit")),
        "n_features": len(run.features),
    }


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
    path, summary, cfg, horizons, features, df, folds = (
        run.path, run.summary, run.cfg, run.horizons, run.features, run.df, run.folds)
    if only_folds is not None:
        if not run.model_class.fold_parallel:
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

    def on_epoch_end(fold: int, epoch: int, entry: dict[str, Any]) -> None:
        # Each epoch's checkpoint reaches the store, so a retried pod resumes where this one stopped.
        publish(f"{FINAL}/checkpoint" if fold == FINAL_FOLD else f"checkpoints/fold{fold}")

    fitted = build_model(cfg, on_epoch_end=on_epoch_end)
    predictions, metrics = run_walk_forward(
        fitted, df, features, horizons, folds, seed=int(cfg.seed), valid_fraction=float(cfg.validation.fraction),
        valid_embargo=int(cfg.validation.embargo), model_dir=out, only_folds=only_folds)
    if only_folds is not None:
        publish(last=["result.json"])
        return {"model": model, "model_dir": where, "dataset": run.uri, **metrics}
    if cfg.get("refit"):
        metrics["refit"] = _refit(run, fitted, metrics, out / FINAL)
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
