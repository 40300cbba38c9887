"""`gogoku blend`: a weighted blend of trained runs (e.g. LightGBM + ATFT-GAT-FAN), weights chosen on
validation slices only.

Every run must have been trained on the same dataset, horizons and walk-forward folds, and keep each
fold's predictions of its validation slice (`checkpoints/fold{k}/valid_predictions.parquet`). Each
run's predictions are turned into per-Date rank scores in [-0.5, 0.5] (scale-free, so a regressor
of returns and a ranker mix fairly; a name a run did not score counts as 0). Per fold and horizon,
the weights are the point of a simplex grid (`step`) whose blend has the highest mean daily RankIC on
that fold's validation slice, the rows every run scored; the fold's test rows get those weights. The
test blocks choose nothing.

The blend folder is a model folder like any other: predictions.parquet, metrics.json (the weights and
validation RankICs per fold and horizon), config.yaml; `gogoku evaluate` / `report` read it. The runs
may be data-root URIs (fetched from an object store: `fetch_skips` says what is left there) and the
blend may go to `<data root>/models/<name>` (`--run-name`, published with metrics.json last). When every
run has a production model (`final/`), the blend gets one too: the runs' final folders copied into
`final/<run>/` and `final/model.json` with the weights (the mean over the folds) for `gogoku predict`.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from gogoku.errors import InputError
from gogoku.evaluate.metrics import daily_ic, ic_summary, json_clean, walk_forward_metrics
from gogoku.io import atomic_write, write_json_atomic, write_parquet_atomic
from gogoku.train.walkforward import CHECKPOINTS, VALID_PREDICTIONS, load_final_model, score_day

log = logging.getLogger(__name__)

KIND = "blend"
MIN_NAMES = 20  # names a validation day needs to count in the mean daily RankIC


def fetch_skips(rel: str) -> bool:
    """What a blend does not fetch of a run in an object store: TensorBoard logs, training checkpoints
    and the refit's checkpoint (the folds' validation predictions and the production model it reads)."""
    path = f"/{rel}"
    if "/tensorboard/" in path or "/final/checkpoint/" in path:
        return True
    return "/checkpoints/" in path and not path.endswith(f"/{VALID_PREDICTIONS}")


def rank_score(col: str) -> pl.Expr:
    """Per Date: (rank - 1) / (names - 1) - 0.5 of `col` (average ties), 0 where `col` is null."""
    ranks = pl.col(col).rank("average").over("Date")
    names = pl.col(col).count().over("Date")
    return (pl.when(names > 1).then((ranks - 1) / (names - 1).cast(pl.Float64) - 0.5).otherwise(0.0)
            .fill_null(0.0).alias(col))


def simplex_grid(k: int, step: float) -> list[tuple[float, ...]]:
    """Weights of k runs on a grid of `step` that sum to 1 (each >= 0), the runs' own order first."""
    if k < 1 or not 0 < step <= 1 or abs(round(1 / step) * step - 1) > 1e-9:
        raise InputError(f"--step {step}: expected 1/n for a whole n (e.g. 0.1), with at least one run")
    n = round(1 / step)
    points = [c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]
    return [tuple(x / n for x in c) for c in sorted(points, reverse=True)]


def blend_expr(columns: Sequence[str], weights: Sequence[float]) -> pl.Expr:
    return pl.sum_horizontal(pl.col(c) * w for c, w in zip(columns, weights, strict=True))


def choose_weights(valid: pl.DataFrame, columns: Sequence[str], target: str, step: float,
                   min_names: int = MIN_NAMES) -> tuple[tuple[float, ...], dict[str, float]]:
    """The grid weights whose blend of the rank-score `columns` has the highest mean daily RankIC with
    `target` on `valid` (ties: the first in grid order); with the RankIC of each column alone and of
    the blend."""
    def score(frame: pl.DataFrame) -> float:
        value = ic_summary(daily_ic(frame, "_blend", target, min_names=min_names)).get("rank_ic_mean")
        return float(value) if value is not None and math.isfinite(value) else -math.inf

    best, best_score = None, -math.inf
    for weights in simplex_grid(len(columns), step):
        value = score(valid.select("Date", target, blend_expr(columns, weights).alias("_blend")))
        if best is None or value > best_score:
            best, best_score = weights, value
    alone = {c: score(valid.select("Date", target, pl.col(c).alias("_blend"))) for c in columns}
    assert best is not None
    return best, {**alone, "blend": best_score}


def _load(folder: Path) -> dict[str, Any]:
    if not (folder / "metrics.json").is_file():
        raise InputError(f"{folder}: not a finished model folder (no metrics.json)")
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: unreadable metrics.json ({exc})") from None
    config_file = folder / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    return {"folder": folder, "metrics": metrics, "config": config, "model": str(metrics.get("model", folder.name))}


def _check_same_runs(runs: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
    first = runs[0]
    horizons = [int(str(h).rstrip("d")) for h in first["metrics"]["horizons"]]
    folds = first["metrics"]["folds"]
    keys = ("fold", "train_start", "test_start", "test_end")
    for run in runs[1:]:
        m = run["metrics"]
        if m.get("dataset") != first["metrics"].get("dataset"):
            raise InputError(f"{run['folder']}: trained on {m.get('dataset')}, {first['folder']} on "
                             f"{first['metrics'].get('dataset')}: a blend needs one dataset")
        if [int(str(h).rstrip("d")) for h in m["horizons"]] != horizons:
            raise InputError(f"{run['folder']}: horizons {list(m['horizons'])} differ from {list(first['metrics']['horizons'])}")
        if [{k: f.get(k) for k in keys} for f in m["folds"]] != [{k: f.get(k) for k in keys} for f in folds]:
            raise InputError(f"{run['folder']}: its walk-forward folds differ from {first['folder']}'s "
                             "(train them with the same splits and validation settings)")
    return horizons, folds


def _labels(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    names = [r["model"] for r in runs]
    return [n if names.count(n) == 1 else f"{n}_{r['folder'].name}" for n, r in zip(names, runs, strict=True)]


def _fold_frames(runs: Sequence[Mapping[str, Any]], labels: Sequence[str], fold: int, horizons: Sequence[int],
                 which: str) -> pl.DataFrame:
    """One fold's rows of every run (validation or test), inner-joined on (Code, Date), with each
    run's rank scores `s_{label}_{h}d` (over those rows) and the targets of the first run."""
    frames = []
    for k, (run, label) in enumerate(zip(runs, labels, strict=True)):
        if which == "valid":
            path = run["folder"] / CHECKPOINTS / f"fold{fold}" / VALID_PREDICTIONS
            if not path.is_file():
                raise InputError(f"{run['folder']}: fold {fold} kept no validation predictions ({path.name}); "
                                 "retrain the run with this version to blend it")
            frame = pl.read_parquet(path)
        else:
            frame = run["test"].filter(pl.col("fold") == fold)
        keep = [pl.col("Code"), pl.col("Date").cast(pl.Date)]
        keep += [pl.col(f"pred_{h}d").alias(f"s_{label}_{h}d") for h in horizons]
        if k == 0:
            keep += [pl.col(f"target_{h}d") for h in horizons]
        frames.append(frame.select(keep))
    out = frames[0]
    for frame in frames[1:]:
        out = out.join(frame, on=["Code", "Date"], how="inner")
    # Ranks over the rows every run scored.
    return out.with_columns(rank_score(f"s_{label}_{h}d") for label in labels for h in horizons)


def blend_runs(folders: Sequence[Path], out: Path, step: float = 0.1, min_names: int = MIN_NAMES) -> dict[str, Any]:
    """Blend the runs of `folders` into the model folder `out` (see the module docstring)."""
    if len(folders) < 2:
        raise InputError("--runs: a blend needs at least two model folders")
    runs = [_load(Path(f)) for f in folders]
    horizons, folds = _check_same_runs(runs)
    labels = _labels(runs)
    for run in runs:
        path = run["folder"] / "predictions.parquet"
        if not path.is_file():
            raise InputError(f"{run['folder']}: no predictions.parquet")
        run["test"] = pl.read_parquet(path)
    parts, extra = [], []
    for info in folds:
        fold = int(info["fold"])
        valid = _fold_frames(runs, labels, fold, horizons, "valid")
        test = _fold_frames(runs, labels, fold, horizons, "test")
        per_h: dict[str, Any] = {}
        blended = test.select("Code", "Date", pl.lit(fold, dtype=pl.Int32).alias("fold"))
        for h in horizons:
            columns = [f"s_{label}_{h}d" for label in labels]
            weights, scores = choose_weights(valid, columns, f"target_{h}d", step, min_names)
            per_h[str(h)] = {"weights": dict(zip(labels, weights, strict=True)),
                             "valid_rank_ic": {label: scores[c] for label, c in zip(labels, columns, strict=True)}
                             | {"blend": scores["blend"]}, "valid_rows": valid.height}
            blended = blended.with_columns(test.select(blend_expr(columns, weights).alias(f"pred_{h}d")).to_series(),
                                           test.get_column(f"target_{h}d"))
            log.info("fold %d h=%dd: weights %s (validation RankIC %s)", fold, h,
                     {k: round(v, 2) for k, v in per_h[str(h)]["weights"].items()},
                     {k: round(v, 4) for k, v in per_h[str(h)]["valid_rank_ic"].items()})
        parts.append(blended)
        extra.append(per_h)
    predictions = pl.concat(parts).sort("Code", "Date")
    per_horizon = walk_forward_metrics(predictions, horizons, folds, lambda h, i: extra[i].get(str(h), {}),
                                       bootstrap=None)
    mean_weights = {f"{h}d": {label: sum(e[str(h)]["weights"][label] for e in extra) / len(extra) for label in labels}
                    for h in horizons}
    first = runs[0]["metrics"]
    metrics = json_clean({
        "model": KIND, "dataset": first.get("dataset"), "dataset_rows": first.get("dataset_rows"),
        "horizons": per_horizon, "folds": folds, "n_features": first.get("n_features"),
        "components": {label: str(r["folder"]) for label, r in zip(labels, runs, strict=True)},
        "step": step, "mean_weights": mean_weights,
    })
    out.mkdir(parents=True, exist_ok=True)
    config = {"model": {"name": KIND, "components": {label: r["config"].get("model", {}).get("name", r["model"])
                                                     for label, r in zip(labels, runs, strict=True)}, "step": step},
              **{k: v for k, v in runs[0]["config"].items() if k != "model"}}
    atomic_write(out / "config.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
    final = _blend_finals(runs, labels, mean_weights, out / "final")
    write_parquet_atomic(predictions, out / "predictions.parquet")
    write_json_atomic(metrics, out / "metrics.json")  # the folder's completion marker, last
    return {"model_dir": str(out), "components": metrics["components"], "mean_weights": mean_weights,
            "final": final, "headline": {k: {"rank_ic_mean": v.get("rank_ic_mean")} for k, v in per_horizon.items()}}


def _blend_finals(runs: Sequence[Mapping[str, Any]], labels: Sequence[str], weights: Mapping[str, Mapping[str, float]],
                  folder: Path) -> str | None:
    """final/: each run's production model and the blend's description, when every run has one."""
    descriptions = []
    for run in runs:
        path = run["folder"] / "final" / "model.json"
        if not path.is_file():
            log.info("%s has no production model (final/): the blend gets none", run["folder"])
            return None
        descriptions.append(json.loads(path.read_text()))
    if folder.exists():
        shutil.rmtree(folder)
    for run, label in zip(runs, labels, strict=True):
        # The refit's training checkpoint stays behind: scoring reads the saved model only.
        shutil.copytree(run["folder"] / "final", folder / label, ignore=shutil.ignore_patterns("checkpoint"))
    features = sorted({f for d in descriptions for f in d["features"]})
    horizons = [h for h in descriptions[0]["horizons"] if all(h in d["horizons"] for d in descriptions)]
    plans = {d.get("plan") for d in descriptions}
    if len(plans) > 1:
        raise InputError(f"the runs' production models were trained on different plans {sorted(map(str, plans))}")
    first_config = descriptions[0].get("config") or {}
    write_json_atomic({
        "kind": KIND, "model": KIND, "features": features, "horizons": horizons,
        "plan": descriptions[0].get("plan"), "dataset": descriptions[0].get("dataset"),
        # What `gogoku predict` loads (config.model._target_) and `gogoku model promote` reads (promotion).
        "config": {"model": {"name": KIND, "_target_": f"{__name__}.BlendModel"},
                   "promotion": first_config.get("promotion") or {}},
        "components": labels, "weights": {f"{h}d": weights[f"{h}d"] for h in horizons},
        "trained_through": min(str(d.get("trained_through")) for d in descriptions),
        "data_end": min(str(d.get("data_end")) for d in descriptions),
        "walk_forward": {},
    }, folder / "model.json")
    return str(folder)


class BlendModel:
    """Loads a blend's production model (`final/model.json` of kind blend) for `gogoku predict`."""

    kind = KIND

    @classmethod
    def load_final(cls, folder: Path, description: Mapping[str, Any]) -> FinalBlend:
        return FinalBlend(folder, description)


class FinalBlend:
    """Scores a day with each component's production model and blends their per-Date rank scores."""

    def __init__(self, folder: Path, description: Mapping[str, Any]) -> None:
        self.labels = list(description["components"])
        self.horizons = [int(h) for h in description["horizons"]]
        self.weights = {int(str(h).rstrip("d")): dict(w) for h, w in description["weights"].items()}
        self.components = [load_final_model(folder / label, json.loads((folder / label / "model.json").read_text()),
                                            str(folder / label / "model.json")) for label in self.labels]

    @property
    def history_sessions(self) -> int:
        return max(int(getattr(c, "history_sessions", 0)) for c in self.components)

    def score(self, frame: pl.DataFrame, day: Any) -> pl.DataFrame:
        """Code, Date and score_{h}d (the blended rank score) for the names of `frame` on `day`."""
        out = frame.filter(pl.col("Date") == day).select("Code", "Date")
        for label, model in zip(self.labels, self.components, strict=True):
            scores = score_day(model, frame, day)
            out = out.join(scores.select("Code", *[rank_score(f"score_{h}d").alias(f"s_{label}_{h}d")
                                                   for h in self.horizons]), on="Code", how="left")
        return out.select("Code", "Date", *[
            blend_expr([f"s_{label}_{h}d" for label in self.labels],
                       [self.weights[h][label] for label in self.labels]).fill_null(0.0).alias(f"score_{h}d")
            for h in self.horizons])
