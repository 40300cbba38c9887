"""The walk-forward loop that every model runs through: folds, embargo, resume, predictions, metrics.

A model plugs in through `FoldModel` (one instance per run, built from its config by `from_config`;
`configs/model/<name>.yaml` names the class in `_target_`):
- `prepare(df, features, horizons)`: once per run, before any fold (e.g. the daily graphs, label
  transforms); returns the frame the folds read;
- `fit_fold(job)`: fit on `job.fit_dates` (early stopping on `job.valid_dates`, the slice at the end
  of the training dates after an embargo) and predict `job.test_dates`: Code, Date, pred_{h}d;
- `validate_fold(job)` (optional, for hyperparameter search): fit and return the validation score,
  never reading a test block;
- `summary()`: what the run's metrics say about the model (parameters, speed, ...);
- `fit_final(df, features, horizons, folder, metrics)`: the production model on every labelled date;
  `load_final(folder, description)` (a classmethod): that model loaded for `gogoku predict`.

The loop (`run_walk_forward`) owns what no model should do differently: the checks of the inputs
(an embargo at least the longest horizon), the validation split of each fold, a fold folder
`checkpoints/fold{k}/` with its test predictions and `result.json` (a run restarted on the same
folder skips finished folds, and refuses a folder trained with other settings, data or folds:
`fingerprint`) and, when the model gives them, its predictions of the validation slice
(`valid_predictions.parquet`, what `gogoku blend` weighs runs on), training only some folds (parallel fold tasks; a later run assembles them), the
join of the raw targets and the metrics over all test blocks together.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from gogoku.dataset.splits import Fold, check_training_inputs, fold_summary, on_dates, validation_split
from gogoku.errors import InputError
from gogoku.evaluate.metrics import json_clean, walk_forward_metrics
from gogoku.io import write_json_atomic, write_parquet_atomic

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
VALID_PREDICTIONS = "valid_predictions.parquet"  # a fold's predictions of its validation slice, with targets
FINAL_FOLD = 999  # the production model's (refit) fold index in epoch hooks and logs, never a real fold
# Config keys that say where or how a model runs, not what it learns: a checkpoint saved on a GPU may be
# resumed on another machine.
RUN_ONLY_KEYS = ("name", "_target_", "pod_profile")


@dataclass(frozen=True)
class FoldJob:
    """One fold as a model sees it."""

    index: int
    fit_dates: list[Any]
    valid_dates: list[Any]
    test_dates: list[Any]
    folder: Path | None  # the fold's own folder (checkpoints, resume state), None without a model folder
    model_dir: Path | None
    fingerprint: str


@dataclass
class FoldResult:
    """What `fit_fold` returns: the test predictions (Code, Date, pred_{h}d), figures for the fold's
    entry in the metrics (`info`), per-horizon figures (`horizons`, keyed by h) and anything else the
    model keeps in the fold's result.json (`extra`)."""

    predictions: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    # The same model's predictions of the fold's validation slice (Code, Date, pred_{h}d): what a blend
    # of runs chooses its weights on (`gogoku blend`), never the test block.
    valid_predictions: pl.DataFrame | None = None
    horizons: dict[int, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class FoldModel(Protocol):
    """A model the walk-forward loop trains (see the module docstring)."""

    kind: ClassVar[str]  # how final/model.json says to load the production model
    fold_parallel: ClassVar[bool]  # whether its folds can train in separate processes (pods)

    @property
    def name(self) -> str: ...

    def fingerprint_config(self) -> Mapping[str, Any]: ...

    def prepare(self, df: pl.DataFrame, features: list[str], horizons: list[int]) -> pl.DataFrame: ...

    def fit_fold(self, job: FoldJob) -> FoldResult: ...

    def summary(self) -> dict[str, Any]: ...

    def finish(self, model_dir: Path | None, last_fold: FoldJob | None) -> None: ...


# Production models registered before the model configs named their class (`_target_`).
CLASS_OF_KIND = {"lightgbm": "gogoku.baselines.lightgbm.LightGBMModel", "atft": "gogoku.train.atft.AtftModel",
                 "blend": "gogoku.train.blend.BlendModel"}


def load_final_model(folder: Path, description: Mapping[str, Any], where: str) -> Any:
    """The production model of `folder` (its `final/model.json` is `description`, named `where` in
    errors), loaded by the class the config's `_target_` names (or, for models saved before configs
    named their class, the class of its `kind`)."""
    target = ((description.get("config") or {}).get("model") or {}).get("_target_") \
        or CLASS_OF_KIND.get(str(description.get("kind")))
    if not target:
        raise InputError(f"{where}: no model class (_target_) or known kind")
    return load_class(str(target)).load_final(folder, description)


def score_day(scorer: Any, frame: pl.DataFrame, day: Any) -> pl.DataFrame:
    """A production model's scores of `day`: a sequence model (one with `history_sessions`) reads the
    sessions of `frame` before the day too, any other model the day's rows only."""
    if hasattr(scorer, "history_sessions"):
        return scorer.score(frame, day)
    return scorer.score(frame.filter(pl.col("Date") == day))


def load_class(target: str) -> Any:
    """The class at the dotted path `target` (a model config's `_target_`)."""
    module, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InputError(f"_target_ {target}: no such class ({exc})") from None


def fingerprint(config: Mapping[str, Any], *parts: Any) -> str:
    """A hash of what a fold's training depends on, to refuse resuming someone else's checkpoint."""
    settings = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
    text = json.dumps([settings, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_walk_forward(
    model: FoldModel,
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    horizons: Sequence[int],
    folds: Sequence[Fold] | None = None,
    *,
    seed: int = 42,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
    model_dir: Path | None = None,
    only_folds: Sequence[int] | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Train and predict every fold; return (test predictions, metrics).

    Predictions: Code, Date, fold, pred_{h}d, target_{h}d for every test row. Metrics: per horizon
    the statistics over all test blocks together plus a `folds` list (point figures per fold), the
    folds' date ranges and row counts, and the model's `summary()`. With `only_folds` (and
    `model_dir`) only those folds are trained and saved, and the result is an empty frame with
    {"folds_trained": [...]}: a later call without it on the same `model_dir` loads them.
    """
    if only_folds is not None and model_dir is None:
        raise InputError("only_folds needs model_dir: the folder a later run assembles the folds from")
    feature_cols, horizons = list(feature_cols), [int(h) for h in horizons]
    targets = [f"target_{h}d" for h in horizons]
    folds = check_training_inputs(df, feature_cols, horizons, folds, valid_embargo)
    df = model.prepare(df, feature_cols, horizons)
    truth = df.select("Code", "Date", *targets)  # the raw targets every fold's predictions are joined with
    config = model.fingerprint_config()
    fold_info: list[dict[str, Any]] = []
    per_fold_horizons: list[dict[str, dict[str, Any]]] = []
    pred_parts: list[pl.DataFrame] = []
    last_job: FoldJob | None = None
    for fold in folds:
        if only_folds is not None and fold.index not in only_folds:
            continue
        fit_dates, valid_dates = validation_split(fold.train_dates, valid_fraction, valid_embargo)
        folder = Path(model_dir) / CHECKPOINTS / f"fold{fold.index}" if model_dir is not None else None
        job = FoldJob(fold.index, fit_dates, valid_dates, list(fold.test_dates), folder,
                      Path(model_dir) if model_dir is not None else None,
                      fingerprint(config, feature_cols, horizons, seed, fit_dates, valid_dates, fold.test_dates))
        last_job = job
        done_file = folder / "result.json" if folder is not None else None
        if done_file is not None and done_file.is_file():
            result = json.loads(done_file.read_text())
            if result.get("fingerprint") != job.fingerprint or "fold_info" not in result:
                raise InputError(f"{done_file}: saved by a run with other settings, data or folds; use a new --out folder")
            out = pl.read_parquet(folder / "predictions.parquet")
            log.info("fold %d: already trained, predictions loaded from %s", fold.index, folder)
        else:
            fitted = model.fit_fold(job)

            def tagged(frame: pl.DataFrame, index: int = fold.index) -> pl.DataFrame:
                return frame.with_columns(pl.col("Date").cast(pl.Date), pl.lit(index, dtype=pl.Int32).alias("fold"))

            out = tagged(fitted.predictions)
            result = json_clean({"fingerprint": job.fingerprint, "fold_info": fitted.info,
                                 "horizons": {str(h): v for h, v in fitted.horizons.items()}, **fitted.extra})
            if folder is not None:
                if fitted.valid_predictions is not None:
                    valid = tagged(fitted.valid_predictions).join(truth, on=["Code", "Date"], how="left")
                    write_parquet_atomic(valid, folder / VALID_PREDICTIONS)
                write_parquet_atomic(out, folder / "predictions.parquet")
                write_json_atomic(result, done_file)
        out = out.join(truth, on=["Code", "Date"], how="left")
        pred_parts.append(out.select("Code", "Date", "fold",
                                     *[c for h in horizons for c in (f"pred_{h}d", f"target_{h}d")]))
        per_fold_horizons.append(result.get("horizons", {}))
        fold_info.append({
            **fold_summary(fold, fit_dates, valid_dates),
            # Counted on the Date column: a filter of the frame would copy the fold's rows of every feature.
            "fit_rows": df.select(on_dates(fit_dates).sum()).item(),
            "valid_rows": df.select(on_dates(valid_dates).sum()).item(),
            "test_rows": out.height,
            **result["fold_info"],
        })

    if only_folds is not None:
        return pl.DataFrame(), {"folds_trained": [info["fold"] for info in fold_info], **model.summary()}
    model.finish(Path(model_dir) if model_dir is not None else None, last_job)
    predictions = pl.concat(pred_parts).sort("Code", "Date")
    # Per fold: point figures only; the bootstrap intervals are for the whole test span.
    per_horizon = walk_forward_metrics(predictions, horizons, fold_info,
                                       lambda h, i: per_fold_horizons[i].get(str(h), {}), bootstrap=None)
    metrics = {"model": model.name, "horizons": per_horizon, "folds": fold_info, "n_features": len(feature_cols),
               **model.summary()}
    return predictions, metrics


def validation_scores(
    model: Any,
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    horizons: Sequence[int],
    folds: Sequence[Fold],
    *,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
) -> list[float]:
    """Per fold, the model's validation score (`validate_fold`) after fitting on the fold's fitting
    dates: the objective of hyperparameter search. Only the folds' training dates reach the model (the
    test blocks are dropped before `prepare`)."""
    feature_cols, horizons = list(feature_cols), [int(h) for h in horizons]
    if not folds:
        raise InputError("no folds to validate on")
    if not callable(getattr(model, "validate_fold", None)):
        raise InputError(f"model {model.name!r} has no validation objective for a search")
    train_dates = sorted({d for f in folds for d in f.train_dates})
    df = model.prepare(df.filter(on_dates(train_dates)), feature_cols, horizons)
    scores = []
    for fold in folds:
        fit_dates, valid_dates = validation_split(fold.train_dates, valid_fraction, valid_embargo)
        scores.append(float(model.validate_fold(FoldJob(fold.index, fit_dates, valid_dates, [], None, None, ""))))
    return scores
