"""The DAGs run with `dag.test()` on the built-in simulator (20 stocks) with the local runner.

Real task runner, real `gogoku` CLI subprocesses, real parquet files under a temporary data root
shared by the tests of the session (later runs hit the cache the earlier ones filled).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from airflow.sdk.definitions.param import ParamValidationError

from gogoku.contracts import LOOKBACK_DAYS
from gogoku.dataset.manifest import manifest_path
from gogoku_airflow.plans import SOURCES, plan_allows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

DAGS = Path(__file__).resolve().parents[2] / "dags"
STANDARD = {"start": "2024-07-01", "end": "2024-12-30", "plan_tier": "standard"}
PREMIUM = {"start": "2024-10-01", "end": "2024-12-30", "plan_tier": "premium"}
FREE = {"start": "2024-09-02", "end": "2024-11-29", "plan_tier": "free"}
SUCCESS, SKIPPED, FAILED, UPSTREAM_FAILED = "success", "skipped", "failed", "upstream_failed"
DATA_ROOT = Path(os.environ["AIRFLOW_VAR_GOGOKU_DATA_ROOT"])  # set by conftest.py


class Run:
    """A finished DAG run: its state, task states and return values."""

    def __init__(self, dag_id: str, logical_date: dt.datetime | None = None, conf: dict | None = None) -> None:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        dag = DagBag(dag_folder=str(DAGS)).dags[dag_id]
        kwargs: dict[str, Any] = {"run_conf": conf}
        if logical_date is not None:
            kwargs["logical_date"] = logical_date
        run = dag.test(**kwargs)
        self.run_id = run.run_id
        self.state = str(run.state)
        self.states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        # Mapped tasks: (task_id, map_index) -> state.
        self.mapped = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances() if ti.map_index >= 0}
        with create_session() as session:
            rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=dag_id, key="return_value"))
            self.results = {x.task_id: XComModel.deserialize_value(x) for x in rows}

    def tasks_in(self, state: str) -> set[str]:
        return {t for t, s in self.states.items() if s == state}


def business_days(start: str, end: str) -> list[dt.date]:
    from gogoku.calendar import business_days as jpx_days

    return jpx_days(dt.date.fromisoformat(start), dt.date.fromisoformat(end))


# ---------------------------------------------------------------- gogoku_cache_refresh
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    "logical_date",
    [dt.datetime(2025, 1, 10, 23, tzinfo=dt.UTC),  # Saturday 2025-01-11 08:00 in Tokyo
     dt.datetime(2025, 1, 12, 23, tzinfo=dt.UTC)],  # Monday 2025-01-13, Coming of Age Day
)
def test_cache_refresh_skips_non_business_days(logical_date: dt.datetime) -> None:
    run = Run("gogoku_cache_refresh", logical_date)
    assert run.state == SUCCESS
    assert run.tasks_in(SUCCESS) == {"market_window"}
    assert run.tasks_in(SKIPPED) == {"choose_sources", *(f"refresh_{s}" for s in SOURCES), "publish_market_data"}
    assert "market_window" not in run.results  # a falsy short-circuit result: nothing downstream runs


SPARSE = {"statements", "announcement", "trades_spec", "weekly_margin_interest", "daily_margin_interest",
          "short_selling_positions"}


@pytest.mark.usefixtures("airflow_db")
def test_cache_refresh_on_a_business_day() -> None:
    # 2025-01-07T23:00Z is 08:00 on Wednesday 2025-01-08 in Tokyo: refresh through Tuesday 2025-01-07.
    run = Run("gogoku_cache_refresh", dt.datetime(2025, 1, 7, 23, tzinfo=dt.UTC), {"window_days": 7})
    assert run.state == SUCCESS, run.states
    assert run.results["market_window"] == {"market_date": "2025-01-08", "start": "2024-12-31", "end": "2025-01-07"}
    refreshed = set(SOURCES) - {"futures"}  # Variable gogoku_plan_tier is standard
    assert run.tasks_in(SKIPPED) == {"refresh_futures"}
    for source in refreshed:
        report = run.results[f"refresh_{source}"]
        assert (report["start"], report["end"]) == ("2024-12-31", "2025-01-07")
        entry = report["sources"][source]
        frame = pl.read_parquet(entry["uri"])
        assert frame.height == entry["rows"], source
        # Weekly and event tables may have no record in a 7-day window over the new year.
        assert entry["rows"] > 0 or source in SPARSE, source
    quotes = pl.read_parquet(run.results["refresh_daily_quotes"]["sources"]["daily_quotes"]["uri"])
    assert sorted(quotes["Date"].unique()) == business_days("2024-12-31", "2025-01-07")
    assert quotes["Code"].n_unique() <= 20
    # The event that starts gogoku_daily: the market date, the refreshed window and the plan.
    assert run.results["publish_market_data"] == {**run.results["market_window"], "plan": "standard"}


# ---------------------------------------------------------------- gogoku_dataset
@pytest.fixture(scope="session")
def standard_dataset(airflow_db: Path) -> Run:
    return Run("gogoku_dataset", conf=STANDARD)


def assert_dataset(run: Run, params: dict[str, str]) -> pl.DataFrame:
    build = run.results["build_dataset"]
    frame = pl.read_parquet(build["uri"])
    assert build["uri"] == str(DATA_ROOT / "datasets" / "ml_dataset_{}_{}_{}.parquet".format(
        params["plan_tier"], *(params[k].replace("-", "") for k in ("start", "end"))))
    assert frame.height == build["rows"] > 0
    assert frame["Code"].n_unique() == build["codes"] <= 20
    assert sorted(frame["Date"].unique()) == business_days(params["start"], params["end"])
    assert frame.select(["Code", "Date"]).is_duplicated().sum() == 0
    assert build["plan"] == params["plan_tier"]
    assert run.results["validate_params"]["fetch_start"] == (
        dt.date.fromisoformat(params["start"]) - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()
    return frame


def test_dataset_standard_skips_the_futures_path(standard_dataset: Run) -> None:
    run = standard_dataset
    assert run.state == SUCCESS, run.states
    assert run.tasks_in(SKIPPED) == {"fetch_futures", "futures_features"}
    assert run.tasks_in(FAILED) == set()
    frame = assert_dataset(run, STANDARD)
    assert not [c for c in frame.columns if c.startswith("fut_")]
    assert [c for c in frame.columns if c.startswith("mkt_")]  # TOPIX, from the light plan up
    for source in set(SOURCES) - {"futures"}:
        entry = run.results[f"fetch_{source}"]["sources"][source]
        assert Path(entry["uri"]).is_file() and (entry["rows"] > 0 or source in SPARSE), source
    assert run.results["validate_dataset"]["rows"] == run.results["build_dataset"]["rows"]
    # The asset event names this very dataset (a training run on the asset trains on it).
    event = run.results["publish_dataset"]
    assert event["uri"] == run.results["build_dataset"]["uri"] == run.results["validate_dataset"]["uri"]
    assert (event["plan"], event["start"], event["end"]) == ("standard", STANDARD["start"], STANDARD["end"])


@pytest.mark.usefixtures("airflow_db")
def test_dataset_premium_adds_futures_features() -> None:
    run = Run("gogoku_dataset", conf=PREMIUM)
    assert run.state == SUCCESS, run.states
    assert run.tasks_in(SKIPPED) == set()
    futures = run.results["futures_features"]
    assert pl.read_parquet(futures["uri"]).height == futures["rows"] > 0
    assert Path(futures["uri"]).parent == DATA_ROOT / "features"
    frame = assert_dataset(run, PREMIUM)
    assert [c for c in frame.columns if c.startswith("fut_")]


@pytest.mark.usefixtures("airflow_db")
def test_dataset_free_plan_skips_topix_and_futures() -> None:
    run = Run("gogoku_dataset", conf=FREE)
    assert run.state == SUCCESS, run.states
    beyond_free = {f"fetch_{s}" for s in SOURCES if not plan_allows("free", s)}
    assert "fetch_topix" in beyond_free and "fetch_weekly_margin_interest" in beyond_free
    assert run.tasks_in(SKIPPED) == {*beyond_free, "futures_features"}
    frame = assert_dataset(run, FREE)
    assert not [c for c in frame.columns if c.startswith(("fut_", "mkt_", "flow_", "margin_", "dmi_", "opt_"))]
    absent = json.loads(manifest_path(Path(run.results["build_dataset"]["uri"])).read_text())
    assert {"market", "flow", "margin", "options"} <= set(absent["absent_groups"])


@pytest.mark.usefixtures("airflow_db")
def test_dataset_end_before_start_fails_fast_naming_the_params(capfd: pytest.CaptureFixture[str]) -> None:
    run = Run("gogoku_dataset", conf={"start": "2024-06-01", "end": "2024-01-01"})
    assert run.state == FAILED
    assert run.tasks_in(FAILED) == {"validate_params"}
    assert run.tasks_in(SUCCESS) == set()
    assert "param 'end' (2024-01-01) is before param 'start' (2024-06-01)" in capfd.readouterr().out
    # The failure is an alert: one JSON line in the alerts file, naming the task, run and cause.
    alerts = [json.loads(line) for line in (Path(os.environ["AIRFLOW_HOME"]) / "gogoku-alerts.jsonl").read_text().splitlines()]
    alert = next(a for a in alerts if a["run_id"] == run.run_id)
    assert (alert["kind"], alert["dag_id"], alert["task_id"]) == ("task_failed", "gogoku_dataset", "validate_params")
    assert "is before param 'start'" in alert["exception"]


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("conf", "message"),
    [({"start": "2024-13-01", "end": "2024-12-30"}, "Invalid input for param start"),
     ({"start": "2024/01/04", "end": "2024-12-30"}, "Invalid input for param start"),
     ({"start": "2024-01-04", "end": "2024-12-30", "plan_tier": "gold"}, "Invalid input for param plan_tier"),
     ({"end": "2024-12-30"}, "Invalid input for param start")],
)
def test_airflow_rejects_malformed_params_at_trigger_time(conf: dict, message: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["gogoku_dataset"]
    with pytest.raises(ParamValidationError, match=message):
        dag.test(run_conf=conf)


# ---------------------------------------------------------------- gogoku_training
def test_training_on_the_built_dataset(standard_dataset: Run, capfd: pytest.CaptureFixture[str]) -> None:
    dataset = standard_dataset.results["build_dataset"]["uri"]
    # A half-year dataset: short horizons allow short embargoes (which must cover the longest horizon).
    overrides = ["horizons=[1,5]", "splits.n_splits=2", "splits.min_train=40", "splits.min_test=20",
                 "splits.embargo=5", "validation.embargo=5", "model.num_boost_round=20",
                 "model.params.min_data_in_leaf=20"]
    run = Run("gogoku_training", conf={"dataset": dataset, "model": "lightgbm", "overrides": overrides})
    assert run.state == SUCCESS, run.states
    assert run.states["train_fold"] == SKIPPED and not run.mapped  # LightGBM trains every fold in `train`
    result = run.results["train"]
    assert result["dataset"] == dataset and result["n_folds"] == 2
    assert Path(result["metrics"]).is_file() and Path(result["predictions"]).is_file()
    assert "splits:\n  n_splits: 2" in (Path(result["model_dir"]) / "config.yaml").read_text()
    assert run.results["report"] == result["headline"]
    assert set(result["headline"]) == {"1d", "5d"}
    model_dir = Path(result["model_dir"])
    # refit (on by default): the production model, registered, then promoted if it beats the champion.
    assert (model_dir / "final" / "model.json").is_file()
    assert run.tasks_in(SUCCESS) >= {"should_register", "register_model", "should_promote", "promote_model"}
    promotion = run.results["promote_model"]
    assert promotion["model"] == run.results["register_model"]["model"] == model_dir.name
    assert promotion["reason"] and promotion["champion"] in {model_dir.name, promotion["previous_champion"]}
    assert "rank_ic_mean" in capfd.readouterr().out  # the table in the report task's log


def test_training_atft_one_task_per_fold_then_assembly(standard_dataset: Run) -> None:
    dataset = standard_dataset.results["build_dataset"]["uri"]
    overrides = ["horizons=[1,5]", "splits.n_splits=2", "splits.min_train=40", "splits.min_test=20",
                 "splits.embargo=5", "validation.embargo=5", "model.training.seq_len=5", "model.graph.lookback=20",
                 "model.graph.min_obs=10",
                 "model.training.phases=[{name:baseline,epochs:1,adaptive_norm:false,gat:false},"
                 "{name:gat,epochs:1,adaptive_norm:true,gat:true}]"]
    run = Run("gogoku_training", conf={"dataset": dataset, "model": "atft_tiny", "overrides": overrides})
    assert run.state == SUCCESS, run.states
    assert run.mapped == {("train_fold", 0): SUCCESS, ("train_fold", 1): SUCCESS}
    result = run.results["train"]
    model_dir = Path(result["model_dir"])
    assert model_dir.name.startswith("atft_tiny_manual") and result["n_folds"] == 2
    metrics = json.loads(Path(result["metrics"]).read_text())
    # The fold tasks trained both folds (2 epochs each); the assembly only loaded them.
    assert [f["epochs_run"] for f in metrics["folds"]] == [2, 2]
    for k in (0, 1):
        assert (model_dir / "checkpoints" / f"fold{k}" / "result.json").is_file()
    assert set(result["headline"]) == {"1d", "5d"}
