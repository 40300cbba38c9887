"""`gogoku blend` (gogoku.train.blend): weights chosen on validation slices, real LightGBM runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_lightgbm import FEATURES, OVERRIDES, write_synthetic  # tests/unit is on sys.path (rootdir-less)

from gogoku.baselines.lightgbm import LightGBMModel
from gogoku.cli import main
from gogoku.errors import InputError
from gogoku.train.blend import BlendModel, choose_weights, fetch_skips, rank_score, simplex_grid
from gogoku.train.run import train


def test_rank_scores_and_the_weight_grid_by_hand() -> None:
    frame = pl.DataFrame({"Date": [1, 1, 1, 1, 2, 2], "p": [0.3, None, -1.0, 0.3, 5.0, 4.0]})
    # Day 1: ranks of 0.3, -1.0, 0.3 are 2.5, 1, 2.5 of 3 names -> 0.25, -0.5, 0.25; the null is neutral.
    assert frame.select(rank_score("p"))["p"].to_list() == [0.25, 0.0, -0.5, 0.25, 0.5, -0.5]
    assert simplex_grid(2, 0.5) == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    assert len(simplex_grid(3, 0.1)) == 66 and all(abs(sum(w) - 1) < 1e-12 for w in simplex_grid(3, 0.1))
    with pytest.raises(InputError, match="--step"):
        simplex_grid(2, 0.3)


def test_what_a_blend_fetches_of_a_run_in_an_object_store() -> None:
    kept = ["models/a/metrics.json", "models/a/predictions.parquet", "models/a/config.yaml",
            "models/a/checkpoints/fold2/valid_predictions.parquet", "models/a/final/model.json",
            "models/a/final/lightgbm_5d.txt", "models/a/final/snapshots.pt"]
    left = ["models/a/checkpoints/fold2/last.pt", "models/a/checkpoints/fold2/snapshots.pt",
            "models/a/tensorboard/fold0/events.out", "models/a/final/checkpoint/last.pt"]
    assert [fetch_skips(r) for r in kept] == [False] * len(kept)
    assert [fetch_skips(r) for r in left] == [True] * len(left)


def test_the_weights_follow_the_validation_slice() -> None:
    rng = np.random.default_rng(0)
    days, names = 30, 40
    target = rng.normal(size=days * names)
    valid = pl.DataFrame({
        "Date": np.repeat(np.arange(days), names), "target_1d": target,
        "good": target + 0.5 * rng.normal(size=days * names), "noise": rng.normal(size=days * names),
    }).with_columns(rank_score("good"), rank_score("noise"))
    weights, scores = choose_weights(valid, ["noise", "good"], "target_1d", 0.1)
    assert weights[1] >= 0.8 and scores["blend"] >= scores["good"] > 0.7 > 0.2 > abs(scores["noise"])
    # Two equally informative, independent views: a mix beats either alone.
    other = target + 0.5 * rng.normal(size=days * names)
    both = valid.with_columns(pl.Series("other", other)).with_columns(rank_score("other"))
    weights, scores = choose_weights(both, ["good", "other"], "target_1d", 0.1)
    assert 0.2 <= weights[0] <= 0.8 and scores["blend"] > max(scores["good"], scores["other"])


def test_blend_of_two_runs_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_synthetic(tmp_path)
    signal = train(path, "lightgbm", tmp_path / "signal", [*OVERRIDES, "refit=true"])
    noise = train(path, "lightgbm", tmp_path / "noise", [*OVERRIDES, "refit=true", "features.exclude=[signal]"])
    valid = pl.read_parquet(tmp_path / "signal" / "checkpoints" / "fold1" / "valid_predictions.parquet")
    assert {"pred_5d", "target_5d", "fold"} <= set(valid.columns) and valid["target_5d"].null_count() == 0
    test = pl.read_parquet(tmp_path / "signal" / "predictions.parquet").filter(pl.col("fold") == 1)
    assert valid["Date"].max() < test["Date"].min()  # the fold's validation slice lies before its test block

    out = tmp_path / "blend"
    assert main(["blend", "--runs", str(tmp_path / "signal"), str(tmp_path / "noise"), "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    labels = list(metrics["components"])
    assert labels == ["lightgbm_signal", "lightgbm_noise"]  # one model name twice: the folder tells them apart
    for h in ("1d", "5d", "10d", "20d"):
        for fold in metrics["horizons"][h]["folds"]:
            assert fold["weights"]["lightgbm_signal"] >= 0.7, (h, fold)  # chosen on validation: the signal run
        assert metrics["horizons"][h]["rank_ic_mean"] > 0.9 * signal["headline"][h]["rank_ic_mean"] > 0.3
        assert noise["headline"][h]["rank_ic_mean"] < 0.1
    assert result["mean_weights"]["5d"]["lightgbm_signal"] >= 0.7
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.height == pl.read_parquet(tmp_path / "signal" / "predictions.parquet").height
    assert main(["evaluate", "--model-dir", str(out), "--model-dir", str(tmp_path / "signal"), "--out", str(tmp_path / "eval"),
                 "--bootstrap", "50"]) == 0
    capsys.readouterr()

    # The production blend: each run's final model, weighted rank scores.
    description = json.loads((out / "final" / "model.json").read_text())
    assert description["config"]["model"]["_target_"] == "gogoku.train.blend.BlendModel"  # what predict loads
    assert description["plan"] == "standard" and description["features"] == sorted(FEATURES)
    blend = BlendModel.load_final(out / "final", description)
    frame = pl.read_parquet(path)
    day = frame["Date"].max()
    scored = blend.score(frame, day).sort("Code")
    parts = []
    for label in labels:
        sub = json.loads((out / "final" / label / "model.json").read_text())
        parts.append(LightGBMModel.load_final(out / "final" / label, sub).score(frame.filter(pl.col("Date") == day))
                     .sort("Code").select(rank_score("score_5d"))["score_5d"].to_numpy())
    w = description["weights"]["5d"]
    np.testing.assert_allclose(scored["score_5d"].to_numpy(), w[labels[0]] * parts[0] + w[labels[1]] * parts[1])
    assert scored["Date"].unique().to_list() == [day] and isinstance(day, dt.date)

    train(path, "lightgbm", tmp_path / "two_folds", [*OVERRIDES[1:], "splits.n_splits=2"])
    for runs, message in (([tmp_path / "signal", tmp_path / "two_folds"], "folds differ"),
                          ([tmp_path / "signal"], "at least two"),
                          ([tmp_path / "signal", tmp_path / "nowhere"], "--runs " + str(tmp_path / "nowhere")),
                          ([tmp_path / "signal", tmp_path / "noise"], "give --out DIR")):
        where = [] if message == "give --out DIR" else ["--out", str(tmp_path / "x")]
        assert main(["blend", "--runs", *map(str, runs), *where]) != 0
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_a_blend_of_runs_in_an_object_store_from_a_pod_with_an_empty_disk(
        gcs_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Two runs trained by one pod into a gs:// data root (the GCS emulator), blended by another pod
    that has only the bucket, read by a third."""
    root = f"gs://{gcs_bucket}/team/prod"
    path = write_synthetic(tmp_path / "inputs")
    monkeypatch.setenv("GOGOKU_DATA_ROOT", root)
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "trainer"))
    for name, extra in (("signal", []), ("noise", ["features.exclude=[signal]"])):
        train(path, "lightgbm", None, [*OVERRIDES, "refit=true", *extra], run_name=name)
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "blender"))
    assert main(["blend", "--runs", f"{root}/models/signal", f"{root}/models/noise", "--run-name", "both"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_dir"] == f"{root}/models/both" and result["final"]
    copy = tmp_path / "blender" / "gs" / gcs_bucket / "team" / "prod" / "models"
    fetched = sorted(p.name for p in (copy / "signal" / "checkpoints").rglob("*") if p.is_file())
    assert fetched == ["valid_predictions.parquet"] * 3  # the folds' boosters stayed in the bucket

    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "reader"))
    from gogoku.config import Settings
    from gogoku.evaluate.report import resolve_model_dirs

    (folder,) = resolve_model_dirs([f"{root}/models/both"], Settings.from_env().store)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model"] == "blend" and metrics["mean_weights"]["5d"]["lightgbm_signal"] >= 0.7
    description = json.loads((folder / "final" / "model.json").read_text())
    assert description["kind"] == "blend" and sorted(p.name for p in (folder / "final").iterdir()) == [
        "lightgbm_noise", "lightgbm_signal", "model.json"]
