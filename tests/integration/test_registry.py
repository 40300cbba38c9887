"""The production model, the registry and the champion: real training runs (LightGBM, small), real
files in the data root, the `gogoku` CLI in this process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic import write_synthetic_dataset

from gogoku.cli import main
from gogoku.config import Settings
from gogoku.evaluate.compare import compare_runs, margins_from
from gogoku.registry import Registry

pytestmark = pytest.mark.integration

TRAIN = ["splits.n_splits=2", "splits.min_train=120", "splits.min_test=40", "horizons=[1,5]",
         "model.num_boost_round=15", "model.params.num_threads=1", "refit=true"]


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path / "root"))
    write_synthetic_dataset(tmp_path / "root")
    return tmp_path / "root"


def test_refit_writes_the_production_model(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(["train", "--model", "lightgbm", "--run-name", "a", *TRAIN], capsys)
    final = root / "models" / "a" / "final"
    assert sorted(p.name for p in final.iterdir()) == ["lightgbm_1d.txt", "lightgbm_5d.txt", "model.json"]
    description = json.loads((final / "model.json").read_text())
    metrics = json.loads((root / "models" / "a" / "metrics.json").read_text())
    # As many rounds as the folds' early stopping chose (their median), on every labelled row.
    for h in (1, 5):
        rounds = [f["best_iteration"] for f in metrics["horizons"][f"{h}d"]["folds"]]
        assert description["refit"]["horizons"][f"{h}d"]["rounds"] == max(int(np.median(rounds)), 1)
        assert description["refit"]["horizons"][f"{h}d"]["rows"] > metrics["folds"][-1]["fit_rows"]
    assert description["features"] == metrics["features"] and description["horizons"] == [1, 5]
    assert description["dataset"] == result["dataset"] and description["kind"] == "lightgbm"
    assert description["config"]["refit"] is True and description["code_version"].startswith("0.1.0")
    assert description["walk_forward"]["5d"]["rank_ic_mean"] == metrics["horizons"]["5d"]["rank_ic_mean"]
    assert metrics["refit"]["trained_through"] == description["trained_through"]


def test_register_promote_compare_rollback(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["train", "--model", "lightgbm", "--run-name", "weak", *TRAIN, "model.params.num_leaves=2",
         "features.exclude=[signal]"], capsys)
    cli(["train", "--model", "lightgbm", "--run-name", "strong", *TRAIN], capsys)
    assert cli(["model", "register", "--model-dir", "weak"], capsys)["model"] == "weak"
    first = cli(["model", "promote", "weak"], capsys)
    assert first["promoted"] and first["reason"].startswith("no champion yet")
    cli(["model", "register", "--model-dir", str(root / "models" / "strong")], capsys)  # a path works too
    better = cli(["model", "promote", "strong"], capsys)
    assert better["promoted"] and better["previous_champion"] == "weak", better
    figures = better["comparison"]["horizons"]
    assert all(f["beats"] and f["difference_ci"][0] > f["margin"] for f in figures.values())
    # The weak model does not beat the strong champion: it stays out unless forced.
    worse = cli(["model", "promote", "weak"], capsys)
    assert not worse["promoted"] and worse["champion"] == "strong"
    assert "not better beyond the margin" in worse["reason"]
    forced = cli(["model", "promote", "weak", "--force"], capsys)
    assert forced["promoted"] and forced["reason"].startswith("forced")
    back = cli(["model", "rollback"], capsys)
    assert back == {**back, "champion": "strong", "previous_champion": "weak"}
    listing = cli(["model", "list"], capsys)
    assert listing["champion"] == "strong" and set(listing["models"]) == {"weak", "strong"}
    assert [e["event"] for e in listing["history"]] == ["register", "promote", "register", "promote", "promote",
                                                         "rollback"]
    # The log is append-only: one file per event, none rewritten.
    assert len(list((root / "models" / "registry").glob("*.json"))) == 6


def test_registry_refuses_what_it_cannot_serve(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["train", "--model", "lightgbm", "--run-name", "no_refit", *TRAIN[:-1]], capsys)
    assert main(["model", "register", "--model-dir", "no_refit"]) == 2
    assert "no production model" in capsys.readouterr().err
    assert main(["model", "promote", "ghost"]) == 2
    assert "model 'ghost' is not registered" in capsys.readouterr().err
    assert main(["model", "rollback"]) == 2
    assert "no champion to roll back from" in capsys.readouterr().err
    with pytest.raises(Exception, match="no champion yet"):
        Registry(Settings.from_env().store).champion()


def test_comparison_is_on_common_rows_and_needs_enough_days(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["train", "--model", "lightgbm", "--run-name", "a", *TRAIN], capsys)
    a = root / "models" / "a"
    same = compare_runs(a, a, [1, 5], margins_from({}, [1, 5]))
    assert same["common_days"] > 40 and not same["beats"]  # identical models: a zero difference
    assert all(f["difference"] == 0 for f in same["horizons"].values())
    # A champion whose test rows do not overlap the candidate's: not comparable.
    shifted = root / "models" / "shifted"
    shifted.mkdir()
    preds = pl.read_parquet(a / "predictions.parquet").with_columns(pl.col("Date").dt.offset_by("400d"))
    preds.write_parquet(shifted / "predictions.parquet")
    (shifted / "metrics.json").write_text("{}")
    apart = compare_runs(a, shifted, [1, 5], {1: 0.0, 5: 0.0})
    assert not apart["beats"] and "not comparable" in apart["reason"] and apart["common_days"] == 0
    assert margins_from({"margin": {"1d": 0.01, 5: 0.02}}, [1, 5, 10]) == {1: 0.01, 5: 0.02, 10: 0.0}
    assert margins_from({"margin": 0.003}, [1, 5]) == {1: 0.003, 5: 0.003}
