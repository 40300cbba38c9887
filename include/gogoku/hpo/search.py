"""`gogoku hpo`: Optuna TPE search with a median pruner over ATFT-GAT-FAN settings.

- The objective is the mean over the last `folds` walk-forward folds of the best validation score
  (horizon-weighted mean daily RankIC on the validation slice at the end of the fold's training
  dates, after its embargo); `gogoku.train.walkforward.validation_scores` never reads a test block.
- Each epoch reports its validation score, so the median pruner stops weak trials early.
- The study lives in an RDB: SQLite under `<data root>/hpo/` by default, or any SQLAlchemy URL
  (`postgresql://...` in a deployment). Workers that share the storage and study name run trials
  in parallel, and a study resumes where it stopped. On an RDB each running trial sends a
  heartbeat; a trial whose worker died (a killed pod) is marked failed after the grace period and
  retried by the next worker.
- The best trial is registered as a model config: `<data root>/hpo/<study>/model.yaml`, the model
  section of the config with the best values, which `gogoku train --model-config <URI>` trains with
  (and `best.json`, the summary with the Hydra overrides).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from gogoku.config import Settings
from gogoku.errors import InputError
from gogoku.storage import ensure_writable_dir
from gogoku.train.run import build_model, compose_config, config_dir, prepare
from gogoku.train.walkforward import validation_scores

log = logging.getLogger(__name__)

DISTRIBUTIONS = ("float", "int", "categorical")
HPO = "hpo"


def load_search_config(path: str | Path | None = None) -> dict[str, Any]:
    """The HPO config: `path`, or configs/hpo/default.yaml."""
    file = Path(path) if path is not None else config_dir() / "hpo" / "default.yaml"
    if not file.is_file():
        raise InputError(f"--config {file}: no such file")
    config = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
    if not isinstance(config, dict) or not isinstance(config.get("space"), dict) or not config["space"]:
        raise InputError(f"--config {file}: expected a mapping with a non-empty `space`")
    for key, spec in config["space"].items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in DISTRIBUTIONS:
            raise InputError(f"--config {file}: space.{key}.type must be one of {', '.join(DISTRIBUTIONS)}")
        if kind == "categorical" and not spec.get("choices"):
            raise InputError(f"--config {file}: space.{key} needs `choices`")
        if kind in ("float", "int") and not (spec.get("low") is not None and spec.get("high") is not None
                                            and spec["low"] < spec["high"]):
            raise InputError(f"--config {file}: space.{key} needs low < high")
    return config


def suggest_overrides(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One Hydra override `key=value` per searched setting."""
    overrides = []
    for key, spec in space.items():
        if spec["type"] == "float":
            value: Any = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif spec["type"] == "int":
            value = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            value = trial.suggest_categorical(key, list(spec["choices"]))
        overrides.append(f"{key}={value}")
    return overrides


def default_storage(study: str, settings: Settings) -> str:
    """SQLite under `<data root>/hpo/`; on an object-store root the file is fetched first and published
    after every trial (one writer at a time: parallel workers need an RDB such as PostgreSQL)."""
    rel = f"{HPO}/{study}.db"
    store = settings.store
    if store.exists(rel):
        store.fetch(rel)
    ensure_writable_dir(store.local_path(HPO), f"the HPO folder of {store.url}")
    return f"sqlite:///{store.local_path(rel).resolve()}"


def run_search(
    dataset: str | Path | None,
    model: str = "atft_gat_fan",
    *,
    n_trials: int | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    timeout_s: float | None = None,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run (or resume) a study; returns its summary and writes `<data root>/hpo/<study>/best.json`."""
    search = load_search_config(config)
    settings = settings or Settings.from_env()
    study_name = study_name or str(search.get("study", "atft_search"))
    n_trials = int(n_trials if n_trials is not None else search.get("n_trials", 20))
    timeout_s = timeout_s if timeout_s is not None else search.get("timeout_s")
    if n_trials < 0:
        raise InputError(f"--n-trials {n_trials}: expected 0 (only summarize the study) or more")
    base = prepare(dataset, model, overrides, settings)
    if not callable(getattr(base.model_class, "validate_fold", None)):
        raise InputError(f"--model {model}: its model class {base.model_class.__name__} has no validation objective "
                         "(validate_fold); hpo searches the ATFT-GAT-FAN models (atft_gat_fan, atft_tiny)")
    n_folds = int(search.get("folds", 1))
    if not 1 <= n_folds <= len(base.folds):
        raise InputError(f"folds={n_folds}: expected 1..{len(base.folds)} (the dataset has {len(base.folds)} folds)")
    folds = base.folds[-n_folds:]
    sqlite_rel = None if storage else f"{HPO}/{study_name}.db"
    storage = _with_driver(storage or default_storage(study_name, settings))

    def publish_study(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if sqlite_rel is not None:
            settings.store.publish(sqlite_rel)


    def objective(trial: optuna.Trial) -> float:
        trial_overrides = suggest_overrides(trial, search["space"])
        cfg = compose_config(model, [*overrides, *trial_overrides])
        epochs = sum(int(p["epochs"]) for p in cfg.model.training.phases)
        position = {f.index: i for i, f in enumerate(folds)}

        def report(fold: int, epoch: int, entry: dict[str, Any]) -> None:
            value = entry["val_score"]
            if math.isfinite(value):
                trial.report(value, position[fold] * epochs + epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {fold} epoch {epoch}: validation score {value:.4f}")

        t0 = time.perf_counter()
        scores = validation_scores(build_model(cfg, on_epoch_end=report), base.df, base.features, base.horizons,
                                   folds, valid_fraction=float(cfg.validation.fraction),
                                   valid_embargo=int(cfg.validation.embargo))
        value = float(sum(scores) / len(scores))
        trial.set_user_attr("overrides", trial_overrides)
        trial.set_user_attr("fold_scores", scores)
        log.info("trial %d: validation score %.4f in %.0fs (%s)", trial.number, value, time.perf_counter() - t0,
                 " ".join(trial_overrides))
        return value

    sampler_cfg, pruner_cfg = search.get("sampler", {}), search.get("pruner", {})
    if sqlite_rel is None:
        # Heartbeats let another worker retry the trial of a worker that died mid-trial.
        storage = open_rdb_storage(
            storage, heartbeat_interval=int(search.get("heartbeat_s", 30)), grace_period=int(search.get("grace_s", 120)),
            heartbeat_stale_trial_callback=getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                                                   optuna.storages.RetryFailedTrialCallback)(
                max_retry=int(search.get("max_retry", 2))))
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_cfg.get("seed"),
                                           n_startup_trials=int(sampler_cfg.get("n_startup_trials", 5))),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=int(pruner_cfg.get("n_startup_trials", 3)),
                                           n_warmup_steps=int(pruner_cfg.get("n_warmup_steps", 2))),
    )
    before = len(study.trials)
    storage_url = storage if isinstance(storage, str) else storage.url
    log.info("study %s (%s): %d trial(s) so far; running %d more on %s, %d fold(s)", study_name,
             _redact(storage_url), before, n_trials, base.uri, len(folds))
    if n_trials:
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s, gc_after_trial=True,
                       callbacks=[publish_study])
    states = [t.state for t in study.trials]
    summary: dict[str, Any] = {
        "study": study_name,
        "storage": _redact(storage_url),
        "dataset": base.uri,
        "model": model,
        "folds": [f.index for f in folds],
        "trials": len(study.trials),
        "new_trials": len(study.trials) - before,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
    }
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        summary.update(best_value=best.value, best_trial=best.number, best_params=best.params,
                       best_overrides=best.user_attrs.get("overrides", []))
        rel = f"{HPO}/{study_name}/best.json"
        summary["best_file"] = settings.store.uri(rel)
        best_cfg = compose_config(model, [*overrides, *summary["best_overrides"]])
        summary["model_config"] = settings.store.write_text(
            f"{HPO}/{study_name}/model.yaml",
            f"# The best trial ({best.number}, validation score {best.value:.4f}) of study {study_name}: "
            f"gogoku train --model-config <this file>\n" + OmegaConf.to_yaml(best_cfg.model, resolve=True))
        settings.store.write_json(rel, json.loads(json.dumps(summary, default=str)))
        log.info("best trial %d: validation score %.4f; train with: gogoku train --model %s %s", best.number,
                 best.value, model, " ".join(summary["best_overrides"]))
    return json.loads(json.dumps(summary, default=str))


def open_rdb_storage(url: str, attempts: int = 5, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage, creating its tables if missing. Workers that start at once on a new
    database race to create them (PostgreSQL: a duplicate key on the type `studydirection`, or on the
    version row); the losers find the tables made by the winner on their next attempt."""
    import sqlalchemy.exc

    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            if attempt == attempts:
                raise
            log.info("another worker is creating the study tables in %s (%s); attempt %d of %d in 1 s",
                     _redact(url), type(exc).__name__, attempt + 1, attempts)
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """`postgresql://` -> `postgresql+psycopg2://` (the driver installed here; SQLAlchemy 2.1 would look
    for psycopg 3 by default)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _redact(url: str) -> str:
    """The storage URL without a password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        if ":" in credentials:
            return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url
