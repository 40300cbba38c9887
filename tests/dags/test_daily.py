"""gogoku_daily with `dag.test()` on the built-in simulator: a champion trained and registered in the
data root, then the day's features, predictions, validation, the asset event and the monitoring."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

DAGS = Path(__file__).resolve().parents[2] / "dags"
TRAIN = ["splits.n_splits=2", "splits.min_train=120", "splits.min_test=40", "splits.embargo=20",
         "model.num_boost_round=20", "model.params.num_threads=1", "model.params.min_data_in_leaf=50", "refit=true"]


def cli(argv: list[str]) -> dict[str, Any]:
    from gogoku.cli import main

    assert main(argv) == 0, argv


def run_daily(conf: dict[str, Any] | None = None, logical_date: dt.datetime | None = None) -> tuple[str, dict, dict]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=str(DAGS)).dags["gogoku_daily"]
    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    run = dag.test(**kwargs)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids="gogoku_daily", key="return_value"))
        results = {x.task_id: XComModel.deserialize_value(x) for x in rows}
    return str(run.state), states, results


@pytest.fixture(scope="module")
def champion(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LightGBM champion trained on 2023-07..2024-12 of the tests' simulated market."""
    root = Path(os.environ["AIRFLOW_VAR_GOGOKU_DATA_ROOT"])
    os.environ["GOGOKU_DATA_ROOT"] = str(root)
    cli(["dataset", "build", "--start", "2023-07-03", "--end", "2024-12-30", "--plan", "standard"])
    cli(["train", "--model", "lightgbm", "--run-name", "daily_champion", *TRAIN])
    cli(["model", "register", "--model-dir", "daily_champion"])
    cli(["model", "promote", "daily_champion", "--force"])
    return "daily_champion"


def test_the_day_is_predicted_validated_published_and_monitored(champion: str) -> None:
    root = Path(os.environ["AIRFLOW_VAR_GOGOKU_DATA_ROOT"])
    state, states, results = run_daily({"date": "2024-12-27"})
    assert state == "success", states
    assert states == {t: "success" for t in ("resolve_day", "daily_features", "predict", "validate_predictions",
                                             "publish_predictions", "monitor", "record_alerts")}
    pred = results["predict"]
    assert pred["uri"] == str(root / "predictions" / "2024-12-27.parquet")
    assert pred["model"] == champion and pred["for_session"] == "2024-12-30"
    frame = pl.read_parquet(pred["uri"])
    assert frame.height == pred["listed"] and pred["scored"] > 0
    # The listed universe is the newest monthly listing snapshot on or before the day (the cache keeps no
    # daily snapshots): every stock in it has a row, scored or with its reason.
    listing = pl.read_parquet(root / "raw" / "listed_info" / "*.parquet").filter(pl.col("Date") <= dt.date(2024, 12, 27))
    snapshot = set(listing.filter(pl.col("Date") == listing["Date"].max())["Code"])
    assert len(snapshot) >= 10 and snapshot <= set(frame["Code"])
    assert frame.filter(pl.col("score_5d").is_null())["reason"].null_count() == 0  # every gap has its reason
    assert sorted(frame.drop_nulls("rank_5d")["rank_5d"].to_list()) == list(range(1, pred["scored"] + 1))
    assert results["publish_predictions"]["uri"] == pred["uri"]
    assert results["validate_predictions"]["valid"] and results["validate_predictions"]["coverage"] > 0.9
    report = json.loads(Path(results["monitor"]["report"]).read_text())
    assert report["last_prediction"] == "2024-12-27" and "5d" in report["skill"]


def test_the_report_shows_the_days_top_and_bottom_names(champion: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `make run` ends with this command: the model's metrics, then the day's names per horizon.
    from gogoku.config import Settings
    from gogoku.predict import show_predictions

    assert run_daily({"date": "2024-12-27"})[0] == "success"  # published already: skipped, still a success
    shown = show_predictions(Settings.from_env(), dt.date(2024, 12, 27), n=3)
    frame = pl.read_parquet(shown["uri"])
    best = frame.sort("rank_5d", nulls_last=True)["Code"][:3].to_list()
    assert [row[0] for row in shown["horizons"]["5d"]["top"]] == best
    worst = frame.drop_nulls("rank_5d").sort("rank_5d", descending=True)["Code"][:3].to_list()
    assert [row[0] for row in shown["horizons"]["5d"]["bottom"]] == worst
    out = capsys.readouterr().out
    assert "predictions as of the close of 2024-12-27" in out and " 5d top " in out and " 5d bottom " in out


def test_a_scheduled_run_takes_the_previous_session_and_skips_holidays(champion: str) -> None:
    # 08:30 JST on Monday 2025-01-06 (first session of the year): predict as of Monday 2024-12-30's close.
    state, states, results = run_daily(logical_date=dt.datetime(2025, 1, 5, 23, 30, tzinfo=dt.UTC))
    assert state == "success", states
    assert results["resolve_day"] == {"date": "2024-12-30", "for_session": "2025-01-06", "model": ""}
    assert results["predict"]["uri"].endswith("predictions/2024-12-30.parquet")
    # 08:30 JST on Friday 2025-01-03: the market is closed, nothing runs.
    state, states, _ = run_daily(logical_date=dt.datetime(2025, 1, 2, 23, 30, tzinfo=dt.UTC))
    assert state == "success" and states["resolve_day"] == "success"
    assert {s for t, s in states.items() if t != "resolve_day"} == {"skipped"}


def test_bad_requests_fail_with_the_reason(champion: str, capfd: pytest.CaptureFixture[str]) -> None:
    state, states, _ = run_daily({"date": "2024-12-27", "model": "no_such_model"})
    assert state == "failed" and states["predict"] == "failed"
    assert "model 'no_such_model' is not registered" in capfd.readouterr().out
