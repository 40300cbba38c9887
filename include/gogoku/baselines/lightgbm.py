"""LightGBM baseline: one regressor per horizon and walk-forward fold (`LightGBMModel`).

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
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import polars as pl

from gogoku.dataset.normalize import cs_rank, cs_zscore
from gogoku.dataset.splits import Fold, on_dates, sort_columnwise
from gogoku.errors import InputError
from gogoku.io import atomic_write, write_json_atomic
from gogoku.train.walkforward import FoldJob, FoldResult, run_walk_forward

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
    "deterministic": True,  # reruns give the same boosters (configs/model/lightgbm.yaml says why)
    "force_row_wise": True,
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


def _features(df: pl.DataFrame, cols: Sequence[str]) -> pl.DataFrame:
    """The feature columns as LightGBM reads them: through Arrow, straight from polars' buffers (no numpy
    matrix; nulls are missing values). Float32 columns are passed as they are, others cast."""
    return df.select(c if df.schema[c] in (pl.Float32, pl.Float64) else pl.col(c).cast(pl.Float32) for c in cols)


def _date_rows(df: pl.DataFrame, dates: Sequence[Any]) -> pl.DataFrame:
    """The rows of `dates` from a frame sorted by Date: a zero-copy slice when they are consecutive in
    it (a fold's fit, validation and test dates are), else a filtered copy."""
    if not dates:
        return df.clear()
    column = df.get_column("Date")
    lo, hi = int(column.search_sorted(min(dates), "left")), int(column.search_sorted(max(dates), "right"))
    part = df.slice(lo, hi - lo)
    if part.get_column("Date").n_unique() == len(set(dates)):
        return part
    return df.filter(on_dates(dates))


class LightGBMModel:
    """The walk-forward plug-in (gogoku.train.walkforward): one regressor per horizon and fold, early
    stopping on the fold's validation slice. The last fold's boosters are saved in the model folder as
    `lightgbm_{h}d.txt` (LightGBM text format) with `feature_importance.json`."""

    kind = "lightgbm"
    fold_parallel = False  # every fold in one process: a fold takes seconds to minutes
    row_order = ("Date", "Code")  # `gogoku train` loads the frame so: each fold's rows are then a slice of it

    def __init__(self, params: Mapping[str, Any] | None = None, *, name: str = "lightgbm", num_boost_round: int = 300,
                 early_stopping_rounds: int = 30, target_transform: TargetTransform = "cs_rank",
                 feature_transform: FeatureTransform = "raw") -> None:
        if feature_transform not in ("raw", "cs_z"):
            raise InputError(f"feature_transform={feature_transform!r}: expected raw or cs_z")
        self._name = name
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self.num_boost_round, self.early_stopping_rounds = int(num_boost_round), int(early_stopping_rounds)
        self.target_transform, self.feature_transform = target_transform, feature_transform
        self.boosters: dict[int, lgb.Booster] = {}

    @classmethod
    def from_config(cls, cfg: Any, on_epoch_end: Any = None) -> LightGBMModel:
        """From a run's composed config (`cfg.model`: configs/model/lightgbm.yaml); boosting has no
        epochs, so `on_epoch_end` is not called."""
        from omegaconf import OmegaConf

        m = cfg.model
        return cls(OmegaConf.to_container(m.params, resolve=True), name=str(m.name),
                   num_boost_round=int(m.num_boost_round), early_stopping_rounds=int(m.early_stopping_rounds),
                   target_transform=m.target_transform, feature_transform=m.feature_transform)

    @property
    def name(self) -> str:
        return self._name

    def fingerprint_config(self) -> dict[str, Any]:
        return {"params": self.params, "num_boost_round": self.num_boost_round,
                "early_stopping_rounds": self.early_stopping_rounds, "target_transform": self.target_transform,
                "feature_transform": self.feature_transform}

    def prepare(self, df: pl.DataFrame, features: list[str], horizons: list[int]) -> pl.DataFrame:
        """The labels per horizon, on the frame sorted by Date (a no-op when it is, as `gogoku train` loads
        it), so that each fold's dates are a zero-copy slice of it."""
        self.horizons = horizons
        self.inputs = features
        if not df.get_column("Date").is_sorted():  # a caller other than `gogoku train`
            df = sort_columnwise(df, self.row_order)
        if self.feature_transform == "cs_z":
            df = cs_zscore(df, features).collect()
            self.inputs = [f"{c}_cs_z" for c in features]
        self.df = df.with_columns(_label(df, f"target_{h}d", self.target_transform).alias(f"_label_target_{h}d")
                                  for h in horizons)
        return self.df

    def _datasets(self, fit: pl.DataFrame, valid: pl.DataFrame, h: int, base: lgb.Dataset
                  ) -> tuple[lgb.Dataset, lgb.Dataset, int, int]:
        """Horizon h's training set (the fold's binned rows, `base`, relabelled; the labelled subset of
        them when some rows have no label) and validation set (binned with the training set's bins)."""
        y_fit = fit.get_column(f"_label_target_{h}d").to_numpy()
        y_valid = valid.get_column(f"_label_target_{h}d").to_numpy()
        keep_fit, keep_valid = np.isfinite(y_fit), np.isfinite(y_valid)
        train_set = base if keep_fit.all() else base.subset(np.flatnonzero(keep_fit).tolist()).construct()
        train_set.set_label(y_fit[keep_fit])
        rows = valid if keep_valid.all() else valid.filter(pl.Series(keep_valid))
        valid_set = lgb.Dataset(_features(rows, self.inputs), y_valid[keep_valid], reference=train_set)
        return train_set, valid_set, int(keep_fit.sum()), int(keep_valid.sum())

    def fit_fold(self, job: FoldJob) -> FoldResult:
        df = self.df
        fit, valid, test = (_date_rows(df, d) for d in (job.fit_dates, job.valid_dates, job.test_dates))
        if fit.is_empty() or valid.is_empty() or test.is_empty():
            raise InputError(f"fold {job.index}: empty fit, validation or test rows")
        t0 = time.perf_counter()
        # The fit rows are binned once for all horizons; only the label changes between them.
        base = lgb.Dataset(_features(fit, self.inputs), np.zeros(fit.height), params=self.params, free_raw_data=True)
        try:
            base.construct()
        except lgb.basic.LightGBMError as exc:  # a bad dataset parameter (e.g. max_bin)
            raise InputError(f"model.params {dict(self.params)}: LightGBM refused them ({exc})") from None
        bin_s = time.perf_counter() - t0
        x_test, x_valid = _features(test, self.inputs), _features(valid, self.inputs)
        out, out_valid = test.select("Code", "Date"), valid.select("Code", "Date")
        per_horizon: dict[int, dict[str, Any]] = {}
        for h in self.horizons:
            t1 = time.perf_counter()
            train_set, valid_set, n_fit, n_valid = self._datasets(fit, valid, h, base)
            t2 = time.perf_counter()
            history: dict[str, Any] = {}
            try:
                booster = lgb.train(
                    self.params,
                    train_set,
                    num_boost_round=self.num_boost_round,
                    valid_sets=[valid_set],
                    valid_names=["valid"],
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False),
                               lgb.record_evaluation(history)],
                )
            except lgb.basic.LightGBMError as exc:  # a bad parameter (LightGBM checks them when training starts)
                raise InputError(f"model.params {dict(self.params)}: LightGBM refused them ({exc})") from None
            rounds = max((len(v) for v in history.get("valid", {}).values()), default=0)
            t3 = time.perf_counter()
            best = booster.best_iteration or self.num_boost_round
            self.boosters[h] = booster
            out = out.with_columns(pl.Series(f"pred_{h}d", booster.predict(x_test, num_iteration=best),
                                             dtype=pl.Float64))
            out_valid = out_valid.with_columns(pl.Series(f"pred_{h}d", booster.predict(x_valid, num_iteration=best),
                                                         dtype=pl.Float64))
            per_horizon[h] = {"best_iteration": best, "rounds": rounds,
                              "datasets_s": round(t2 - t1, 3), "boost_s": round(t3 - t2, 3),
                              "predict_s": round(time.perf_counter() - t3, 3)}
            log.info("fold %d h=%dd: fit %d rows, valid %d rows; best iteration %d of %d rounds; "
                     "datasets %.1f s, boosting %.1f s", job.index, h, n_fit, n_valid, best,
                     rounds, t2 - t1, t3 - t2)
        log.info("fold %d: %d fit rows x %d features binned once in %.1f s", job.index, fit.height,
                 len(self.inputs), bin_s)
        if job.folder is not None:
            _save_boosters(self.boosters, self.inputs, job.folder)
        return FoldResult(out, info={"bin_s": round(bin_s, 3)}, horizons=per_horizon, valid_predictions=out_valid)

    def summary(self) -> dict[str, Any]:
        return {"target_transform": self.target_transform, "feature_transform": self.feature_transform}

    def finish(self, model_dir: Path | None, last_fold: FoldJob | None) -> None:
        """The last fold's boosters and their feature importance into the model folder."""
        if model_dir is None or last_fold is None or last_fold.folder is None:
            return
        for h in self.horizons:
            name = f"lightgbm_{h}d.txt"
            atomic_write(model_dir / name, lambda tmp, n=name: shutil.copyfile(last_fold.folder / n, tmp))
        shutil.copyfile(last_fold.folder / "feature_importance.json", model_dir / "feature_importance.json")

    @classmethod
    def load_final(cls, folder: Path, description: Mapping[str, Any]) -> FinalModel:
        """The refit boosters of `folder` (final/), as `final/model.json` describes them."""
        return FinalModel(folder, description["features"], description["horizons"],
                          description["refit"]["feature_transform"])

    def fit_final(self, df: pl.DataFrame, features: list[str], horizons: list[int], folder: Path,
                  metrics: Mapping[str, Any]) -> dict[str, Any]:
        """As many rounds per horizon as the walk-forward early stopping chose (the median over the folds)."""
        rounds = {h: int(np.median([f["best_iteration"] for f in metrics["horizons"][f"{h}d"]["folds"]]))
                  for h in horizons}
        return fit_final(df, features, horizons, rounds, self.params, target_transform=self.target_transform,
                         feature_transform=self.feature_transform, folder=folder)


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
    """Walk-forward train/predict every horizon; return (test predictions, metrics) (see
    gogoku.train.walkforward.run_walk_forward)."""
    if target_transform not in ("raw", "cs_rank", "cs_z"):
        raise InputError(f"target_transform={target_transform!r}: expected raw, cs_rank or cs_z")
    model = LightGBMModel(params, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
                          target_transform=target_transform, feature_transform=feature_transform)
    return run_walk_forward(model, df, feature_cols, horizons, folds, valid_fraction=valid_fraction,
                            valid_embargo=valid_embargo, model_dir=model_dir)


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
    x = _features(df, inputs)
    trained = {}
    for h in horizons:
        target = f"target_{h}d"
        y = _label(df, target, target_transform).to_numpy()
        keep = np.isfinite(y)
        if keep.sum() < 2:
            raise InputError(f"refit: {target} has fewer than two labelled rows")
        rows = x if keep.all() else x.filter(pl.Series(keep))
        train_set = lgb.Dataset(rows, y[keep], free_raw_data=True)
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
        x = _features(frame, inputs)
        out = frame.select("Code", "Date")
        return out.with_columns(pl.Series(f"score_{h}d", b.predict(x), dtype=pl.Float64) for h, b in self.boosters.items())
