"""LightGBM baseline: one regressor per horizon and walk-forward fold.

Leakage rules (docs/model.md, pitfall 5):
- each fold trains on its training dates only; early stopping uses `validation_split` of those
  training dates (the last fraction, after an embargo), never the test block;
- the only transforms are per-Date cross-sectional ones (label ranks or z-scores and, optionally,
  feature z-scores), which use one Date's rows and nothing across time;
- the metrics are computed on the test blocks' predictions against the RAW forward returns.
Features go in raw by default: trees are invariant to monotone per-feature scaling, and the raw
levels keep market-wide information (e.g. the TOPIX regime) that per-Date z-scores would erase.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import polars as pl

from gogoku.dataset.normalize import cs_rank, cs_zscore
from gogoku.dataset.splits import Fold, check_training_inputs, fold_summary, validation_split
from gogoku.errors import InputError
from gogoku.evaluate.metrics import walk_forward_metrics
from gogoku.io import atomic_write, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "num_threads": 2,
    "verbosity": -1,
    "seed": 42,
}

TargetTransform = Literal["raw", "cs_rank", "cs_z"]
FeatureTransform = Literal["raw", "cs_z"]


def _label(df: pl.DataFrame, target: str, transform: TargetTransform) -> pl.Series:
    if transform == "raw":
        return df[target]
    if transform == "cs_rank":
        return cs_rank(df.select("Date", target), [target]).collect()[f"{target}_cs_rank"]
    if transform == "cs_z":
        return cs_zscore(df.select("Date", target), [target]).collect()[f"{target}_cs_z"]
    raise InputError(f"target_transform={transform!r}: expected raw, cs_rank or cs_z")


def _matrix(df: pl.DataFrame, cols: Sequence[str]) -> np.ndarray:
    # Nulls become NaN, which LightGBM treats as missing.
    return df.select(pl.col(cols).cast(pl.Float32)).to_numpy()


def train_lightgbm(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    horizons: Sequence[int] = (1, 5, 10, 20),
    folds: Sequence[Fold] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    num_boost_round: int = 300,
    early_stopping_rounds: int = 30,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
    target_transform: TargetTransform = "cs_rank",
    feature_transform: FeatureTransform = "raw",
    model_dir: Path | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Walk-forward train/predict every horizon; return (test predictions, metrics).

    Predictions: Code, Date, fold, pred_{h}d, target_{h}d for every test row. Metrics: per horizon
    the `evaluate_predictions` statistics over all test blocks together plus a `folds` list, and a
    `folds` list of the date ranges. With `model_dir`, the last fold's boosters are saved there as
    `lightgbm_{h}d.txt` (LightGBM text format) with `feature_importance.json`.
    """
    feature_cols = list(feature_cols)
    targets = [f"target_{h}d" for h in horizons]
    folds = check_training_inputs(df, feature_cols, horizons, folds, valid_embargo)
    params = {**DEFAULT_PARAMS, **(params or {})}

    model_inputs = feature_cols
    if feature_transform == "cs_z":
        df = cs_zscore(df, feature_cols).collect()
        model_inputs = [f"{c}_cs_z" for c in feature_cols]
    elif feature_transform != "raw":
        raise InputError(f"feature_transform={feature_transform!r}: expected raw or cs_z")
    df = df.with_columns(_label(df, t, target_transform).alias(f"_label_{t}") for t in targets)

    fold_info: list[dict[str, Any]] = []
    pred_parts: list[pl.DataFrame] = []
    best_iters: dict[int, list[int]] = {h: [] for h in horizons}
    boosters: dict[int, lgb.Booster] = {}
    for fold in folds:
        fit_dates, valid_dates = validation_split(fold.train_dates, valid_fraction, valid_embargo)
        fit = df.filter(pl.col("Date").is_in(pl.Series(fit_dates, dtype=pl.Date).implode()))
        valid = df.filter(pl.col("Date").is_in(pl.Series(valid_dates, dtype=pl.Date).implode()))
        test = fold.filter(df, "test")
        if fit.is_empty() or valid.is_empty() or test.is_empty():
            raise InputError(f"fold {fold.index}: empty fit, validation or test rows")
        x_fit, x_valid, x_test = _matrix(fit, model_inputs), _matrix(valid, model_inputs), _matrix(test, model_inputs)
        out = test.select("Code", "Date", pl.lit(fold.index, dtype=pl.Int32).alias("fold"))
        for h, target in zip(horizons, targets, strict=True):
            y_fit = fit[f"_label_{target}"].to_numpy()
            y_valid = valid[f"_label_{target}"].to_numpy()
            keep_fit, keep_valid = np.isfinite(y_fit), np.isfinite(y_valid)
            train_set = lgb.Dataset(x_fit[keep_fit], y_fit[keep_fit], feature_name=list(model_inputs), free_raw_data=True)
            valid_set = lgb.Dataset(x_valid[keep_valid], y_valid[keep_valid], reference=train_set)
            try:
                booster = lgb.train(
                    params,
                    train_set,
                    num_boost_round=num_boost_round,
                    valid_sets=[valid_set],
                    valid_names=["valid"],
                    callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
                )
            except lgb.basic.LightGBMError as exc:  # a bad parameter (LightGBM checks them when training starts)
                raise InputError(f"model.params {dict(params)}: LightGBM refused them ({exc})") from None
            best = booster.best_iteration or num_boost_round
            best_iters[h].append(best)
            boosters[h] = booster
            pred = booster.predict(x_test, num_iteration=best)
            out = out.with_columns(pl.Series(f"pred_{h}d", pred, dtype=pl.Float64), test[target])
            log.info(
                "fold %d h=%dd: fit %d rows, valid %d rows, best iteration %d",
                fold.index, h, int(keep_fit.sum()), int(keep_valid.sum()), best,
            )
        pred_parts.append(out)
        fold_info.append(
            {**fold_summary(fold, fit_dates, valid_dates), "fit_rows": fit.height, "valid_rows": valid.height,
             "test_rows": test.height}
        )

    predictions = pl.concat(pred_parts).sort("Code", "Date")
    # Per fold: point figures only; the bootstrap intervals are for the whole test span.
    per_horizon = walk_forward_metrics(predictions, horizons, fold_info,
                                       lambda h, i: {"best_iteration": best_iters[h][i]}, bootstrap=None)
    metrics = {
        "model": "lightgbm",
        "horizons": per_horizon,
        "folds": fold_info,
        "n_features": len(feature_cols),
        "target_transform": target_transform,
        "feature_transform": feature_transform,
    }
    if model_dir is not None:
        _save_boosters(boosters, model_inputs, Path(model_dir))
    return predictions, metrics


def _save_boosters(boosters: Mapping[int, lgb.Booster], names: Sequence[str], model_dir: Path) -> None:
    importance = {}
    for h, booster in boosters.items():
        atomic_write(model_dir / f"lightgbm_{h}d.txt", lambda tmp, b=booster: b.save_model(str(tmp)))
        gain = booster.feature_importance(importance_type="gain")
        ranked = sorted(zip(names, gain.tolist(), strict=True), key=lambda kv: -kv[1])
        importance[f"{h}d"] = {name: value for name, value in ranked}
    write_json_atomic(importance, model_dir / "feature_importance.json")


# ---------------------------------------------------------------- the production model
def fit_final(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    horizons: Sequence[int],
    rounds: Mapping[int, int],
    params: Mapping[str, Any] | None = None,
    *,
    target_transform: TargetTransform = "cs_rank",
    feature_transform: FeatureTransform = "raw",
    folder: Path,
) -> dict[str, Any]:
    """One regressor per horizon on every labelled row (no hold-out: the walk-forward folds already
    judged the recipe), with the number of boosting rounds the folds' early stopping chose
    (`rounds[h]`, e.g. their median). Saves `lightgbm_{h}d.txt` into `folder`; returns what it used."""
    feature_cols = list(feature_cols)
    params = {**DEFAULT_PARAMS, **(params or {})}
    inputs = feature_cols
    if feature_transform == "cs_z":
        df = cs_zscore(df, feature_cols).collect()
        inputs = [f"{c}_cs_z" for c in feature_cols]
    x = _matrix(df, inputs)
    trained = {}
    for h in horizons:
        target = f"target_{h}d"
        y = _label(df, target, target_transform).to_numpy()
        keep = np.isfinite(y)
        if keep.sum() < 2:
            raise InputError(f"refit: {target} has fewer than two labelled rows")
        train_set = lgb.Dataset(x[keep], y[keep], feature_name=list(inputs), free_raw_data=True)
        booster = lgb.train(params, train_set, num_boost_round=max(int(rounds[h]), 1))
        atomic_write(folder / f"lightgbm_{h}d.txt", lambda tmp, b=booster: b.save_model(str(tmp)))
        trained[f"{h}d"] = {"rows": int(keep.sum()), "rounds": max(int(rounds[h]), 1)}
        log.info("refit h=%dd: %d labelled rows, %d rounds", h, int(keep.sum()), max(int(rounds[h]), 1))
    return {"feature_transform": feature_transform, "target_transform": target_transform, "horizons": trained}


class FinalModel:
    """A refit LightGBM model loaded for scoring: `score(frame)` gives `score_{h}d` for every row."""

    def __init__(self, folder: Path, features: Sequence[str], horizons: Sequence[int], feature_transform: str) -> None:
        self.features = list(features)
        self.horizons = [int(h) for h in horizons]
        self.feature_transform = feature_transform
        self.boosters = {h: lgb.Booster(model_file=str(folder / f"lightgbm_{h}d.txt")) for h in self.horizons}

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Code, Date and score_{h}d for every row of `frame` (a whole cross-section per date: the
        cs_z transform uses same-date statistics)."""
        inputs = self.features
        if self.feature_transform == "cs_z":
            frame = cs_zscore(frame, self.features).collect()
            inputs = [f"{c}_cs_z" for c in self.features]
        x = _matrix(frame, inputs)
        out = frame.select("Code", "Date")
        return out.with_columns(pl.Series(f"score_{h}d", b.predict(x), dtype=pl.Float64) for h, b in self.boosters.items())
