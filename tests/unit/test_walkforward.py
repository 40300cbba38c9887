"""The walk-forward loop (gogoku.train.walkforward) with a minimal model plugged in: what it hands a
model, resume from a model folder, fold-parallel runs, refusing someone else's folder, the HPO
objective without test blocks, the config -> class lookup and `gogoku train --plan-only`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_lightgbm import (  # tests/unit on sys.path
    FEATURES,
    HORIZONS,
    OVERRIDES,
    dataset,
    folds,
    write_synthetic,
)

from gogoku.errors import InputError
from gogoku.train.run import compose_config, model_class, plan, train
from gogoku.train.walkforward import FoldJob, FoldResult, run_walk_forward, validation_scores


class SignalModel:
    """Predicts `scale * signal` for every horizon; records what the loop handed it."""

    kind = "signal"
    fold_parallel = True

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.jobs: list[FoldJob] = []
        self.prepared_dates: list[Any] = []

    @property
    def name(self) -> str:
        return "signal"

    def fingerprint_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "name": "ignored", "pod_profile": "ignored"}

    def prepare(self, df: pl.DataFrame, features: list[str], horizons: list[int]) -> pl.DataFrame:
        self.horizons, self.df = horizons, df
        self.prepared_dates = df["Date"].unique().sort().to_list()
        return df

    def fit_fold(self, job: FoldJob) -> FoldResult:
        self.jobs.append(job)
        test = self.df.filter(pl.col("Date").is_in(job.test_dates))
        out = test.select("Code", "Date", *[(pl.col("signal") * self.scale).cast(pl.Float64).alias(f"pred_{h}d")
                                            for h in self.horizons])
        return FoldResult(out, info={"fit_days": len(job.fit_dates)},
                          horizons={h: {"rounds": h * 10 + job.index} for h in self.horizons}, extra={"note": "x"})

    def validate_fold(self, job: FoldJob) -> float:
        self.jobs.append(job)
        return float(len(job.valid_dates))

    def summary(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def finish(self, model_dir: Path | None, last_fold: FoldJob | None) -> None:
        self.finished = (model_dir, last_fold.index if last_fold else None)


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{path: leaf} of nested dicts and lists."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in flat(sub, f"{prefix}[{i}]").items()}
    return {prefix: tree}


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, list]:
    df = dataset(planted=True)
    return df, folds(df)


def test_each_fold_gets_its_split_and_the_metrics_cover_every_test_block(data, tmp_path: Path) -> None:
    df, splits = data
    model = SignalModel()
    predictions, metrics = run_walk_forward(model, df, FEATURES, HORIZONS, splits, valid_embargo=20, model_dir=tmp_path)
    assert [j.index for j in model.jobs] == [f.index for f in splits]
    for job, fold in zip(model.jobs, splits, strict=True):
        # fit .. embargo (20) .. validation, all inside the training dates; the test block apart
        assert job.fit_dates[-1] < job.valid_dates[0] and job.valid_dates[-1] <= fold.train_dates[-1]
        gap = fold.train_dates.index(job.valid_dates[0]) - fold.train_dates.index(job.fit_dates[-1]) - 1
        assert gap == 20
        assert job.test_dates == list(fold.test_dates)
        assert job.folder == tmp_path / "checkpoints" / f"fold{fold.index}"
    test_dates = {d for f in splits for d in f.test_dates}
    assert set(predictions["Date"].unique().to_list()) == test_dates
    assert predictions.height == df.filter(pl.col("Date").is_in(list(test_dates))).height
    # The raw targets are joined by the loop, whatever the model predicted.
    joined = predictions.join(df.select("Code", "Date", "target_5d"), on=["Code", "Date"])
    assert joined["target_5d"].equals(joined["target_5d_right"], check_names=False)
    assert metrics["model"] == "signal" and metrics["scale"] == 1.0 and metrics["n_features"] == len(FEATURES)
    assert [f["fit_days"] for f in metrics["folds"]] == [len(j.fit_dates) for j in model.jobs]
    assert [f["rounds"] for f in metrics["horizons"]["5d"]["folds"]] == [50 + f.index for f in splits]
    assert metrics["horizons"]["1d"]["rank_ic_mean"] > 0.3  # the planted signal, ranked
    assert model.finished == (tmp_path, splits[-1].index)
    saved = json.loads((tmp_path / "checkpoints" / "fold0" / "result.json").read_text())
    assert saved["note"] == "x" and saved["horizons"]["20"] == {"rounds": 200}


def test_a_rerun_on_the_folder_loads_every_finished_fold(data, tmp_path: Path) -> None:
    df, splits = data
    first_pred, first = run_walk_forward(SignalModel(), df, FEATURES, HORIZONS, splits, model_dir=tmp_path)
    again = SignalModel()
    pred, metrics = run_walk_forward(again, df, FEATURES, HORIZONS, splits, model_dir=tmp_path)
    assert again.jobs == []
    assert pred.equals(first_pred)
    # The same predictions give the same figures (to float rounding: polars may sum in any order).
    assert flat(metrics["horizons"]) == pytest.approx(flat(first["horizons"]), rel=1e-9, nan_ok=True)


def test_folds_trained_apart_are_assembled_by_a_later_run(data, tmp_path: Path) -> None:
    df, splits = data
    one = SignalModel()
    empty, result = run_walk_forward(one, df, FEATURES, HORIZONS, splits, model_dir=tmp_path, only_folds=[1])
    assert empty.is_empty() and result == {"folds_trained": [1], "scale": 1.0}
    assert [j.index for j in one.jobs] == [1]
    rest = SignalModel()
    _, metrics = run_walk_forward(rest, df, FEATURES, HORIZONS, splits, model_dir=tmp_path)
    assert sorted(j.index for j in rest.jobs) == sorted(f.index for f in splits if f.index != 1)
    assert len(metrics["folds"]) == len(splits)
    with pytest.raises(InputError, match="only_folds needs model_dir"):
        run_walk_forward(SignalModel(), df, FEATURES, HORIZONS, splits, only_folds=[0])


def test_a_folder_trained_with_other_settings_is_refused(data, tmp_path: Path) -> None:
    df, splits = data
    run_walk_forward(SignalModel(1.0), df, FEATURES, HORIZONS, splits, model_dir=tmp_path)
    with pytest.raises(InputError, match=r"fold0/result.json: saved by a run with other settings"):
        run_walk_forward(SignalModel(2.0), df, FEATURES, HORIZONS, splits, model_dir=tmp_path)


def test_the_search_objective_never_sees_a_test_block(data) -> None:
    df, splits = data
    model = SignalModel()
    scores = validation_scores(model, df, FEATURES, HORIZONS, splits[-2:], valid_fraction=0.15, valid_embargo=20)
    train_dates = {d for f in splits[-2:] for d in f.train_dates}
    assert set(model.prepared_dates) == train_dates
    assert not train_dates & set(splits[-1].test_dates)
    assert scores == [float(len(j.valid_dates)) for j in model.jobs]


def test_every_model_config_names_a_class_with_the_interface() -> None:
    for name in ("lightgbm", "atft_tiny", "atft_gat_fan"):
        cls = model_class(compose_config(name))
        for attr in ("kind", "fold_parallel", "from_config", "prepare", "fit_fold", "summary", "finish", "fit_final", "load_final"):
            assert hasattr(cls, attr), (name, attr)
    with pytest.raises(InputError, match=r"_target_ gogoku.nowhere.Model"):
        model_class(compose_config("lightgbm", ["model._target_=gogoku.nowhere.Model"]))


def test_plan_only_reports_the_folds_and_profile_that_a_run_would_use(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path)
    for name, profile, parallel in (("lightgbm", "cpu", False), ("atft_gat_fan", "gpu", True), ("atft_tiny", "cpu", True)):
        got = plan(path, name, ["splits.n_splits=3", "splits.min_train=150", "splits.min_test=40"])
        assert (got["model"], got["profile"], got["fold_parallel"], got["n_folds"]) == (name, profile, parallel, 3)
        assert got["dataset"] == str(path.absolute())
    # The same folds as a training run on the dataset.
    result = train(path, "lightgbm", tmp_path / "run", OVERRIDES)
    metrics = json.loads(Path(result["metrics"]).read_text())
    assert [(f["fold"], f["test_start"], f["test_end"]) for f in metrics["folds"]] == [
        (f["fold"], f["test_start"], f["test_end"]) for f in plan(path, "lightgbm", OVERRIDES)["folds"]]
    assert plan(path, "lightgbm", [*OVERRIDES, "splits.n_splits=2", "model.pod_profile=gpu"])["n_folds"] == 2
    with pytest.raises(InputError, match="splits.no_such_key"):
        plan(path, "lightgbm", ["splits.no_such_key=1"])
