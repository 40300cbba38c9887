"""DagBag integrity: the DAGs parse, with owners, retries, pools, schedules and task graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.timetables.base import TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

from gogoku_airflow.plans import SOURCES

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_IDS = {"gogoku_cache_refresh", "gogoku_dataset", "gogoku_dataset_monthly", "gogoku_training", "gogoku_hpo",
           "gogoku_daily"}


def test_no_import_errors_and_all_dags(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_owner_retries_backoff_tags(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert "gogoku" in dag.tags
    assert dag.catchup is False
    for t in dag.tasks:
        assert t.owner == "gogoku", t.task_id
        assert t.retries >= 2, t.task_id
        assert t.retry_exponential_backoff >= 2.0, t.task_id
        assert t.max_retry_delay is not None and t.execution_timeout is not None, t.task_id
        assert t.on_failure_callback, t.task_id  # a failure after the last retry is an alert


def test_cache_refresh_schedule_and_graph(dagbag) -> None:
    dag = dagbag.dags["gogoku_cache_refresh"]
    timetable = dag.timetable
    assert isinstance(timetable, CronTriggerTimetable)
    assert timetable.serialize()["expression"] == "0 8 * * *"
    assert timetable.serialize()["timezone"] == "Asia/Tokyo"
    # 08:00 JST is 23:00 UTC of the day before.
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=TimeRestriction(dag.start_date, None, catchup=False))
    assert first.run_after.in_timezone("UTC").hour == 23
    refreshes = {f"refresh_{s}" for s in SOURCES}
    assert set(dag.task_ids) == {"market_window", "choose_sources", *refreshes, "publish_market_data"}
    assert dag.get_task("market_window").downstream_task_ids == {"choose_sources", "publish_market_data"}
    publish = dag.get_task("publish_market_data")
    assert publish.upstream_task_ids == {"market_window", *refreshes}
    assert publish.trigger_rule == "none_failed_min_one_success"  # skipped sources (futures off) do not block
    assert [a.name for a in publish.outlets] == ["gogoku_market_data"]
    assert dag.get_task("choose_sources").downstream_task_ids == refreshes
    for task_id in refreshes:
        assert dag.get_task(task_id).pool == "jquants_api"
    assert dag.params["window_days"] == 30


def test_dataset_graph(dagbag) -> None:
    dag = dagbag.dags["gogoku_dataset"]
    fetches = {f"fetch_{s}" for s in SOURCES}
    assert dag.get_task("validate_params").downstream_task_ids == {"choose_sources"}
    assert dag.get_task("choose_sources").downstream_task_ids == fetches
    for task_id in fetches:
        assert dag.get_task(task_id).pool == "jquants_api"
    assert dag.get_task("futures_features").upstream_task_ids == {"fetch_futures", "fetch_topix", "fetch_index_option"}
    build = dag.get_task("build_dataset")
    assert build.upstream_task_ids == {*fetches - {"fetch_futures"}, "futures_features"}
    assert build.trigger_rule == "none_failed_min_one_success"
    validate = dag.get_task("validate_dataset")
    assert validate.upstream_task_ids == {"build_dataset"}
    publish = dag.get_task("publish_dataset")
    assert publish.upstream_task_ids == {"build_dataset", "validate_dataset"}
    assert [a.name for a in publish.outlets] == ["gogoku_datasets"]
    assert dag.schedule is None


def test_training_graph(dagbag) -> None:
    dag = dagbag.dags["gogoku_training"]
    assert dag.get_task("prepare_training").downstream_task_ids == {
        "plan_training", "fold_commands", "train_fold", "train", "should_register", "should_promote"}
    # The folds and the pod profile come from `gogoku train --plan-only`, not from the DAG.
    assert dag.get_task("plan_training").argv.key == "plan_argv"
    assert dag.get_task("plan_training").downstream_task_ids == {"fold_commands"}
    assert dag.get_task("train_fold").partial_kwargs["profile"] == dag.get_task("train").profile == (
        "{{ ti.xcom_pull(task_ids='plan_training')['profile'] }}")
    assert dag.get_task("fold_commands").downstream_task_ids == {"train_fold"}
    assert dag.get_task("train_fold").downstream_task_ids == {"train"}
    assert dag.get_task("train").trigger_rule == "none_failed"  # runs after skipped fold tasks (LightGBM)
    assert dag.get_task("train").downstream_task_ids == {"report", "should_register"}
    assert dag.get_task("should_register").downstream_task_ids == {"register_model"}
    assert dag.get_task("register_model").downstream_task_ids == {"should_promote"}
    assert dag.get_task("should_promote").downstream_task_ids == {"promote_model"}
    # Runs on every new dataset once unpaused (and on demand), training on the event's dataset.
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["gogoku_datasets"]
    assert dag.params.get_param("model").schema["enum"] == ["lightgbm", "atft_gat_fan", "atft_tiny"]
    assert dag.params.get_param("fold_parallel").value is True
    # The trigger form submits with its defaults: an empty dataset is allowed (null).
    assert dag.params.get_param("dataset").value is None and "null" in dag.params.get_param("dataset").schema["type"]
    assert dag.params.get_param("plan_tier").value == "standard"


def test_monthly_dataset_graph(dagbag) -> None:
    """The monthly DAG runs the dataset DAG's tasks on a calendar-month data interval in Tokyo."""
    dag = dagbag.dags["gogoku_dataset_monthly"]
    assert dag.timetable.serialize()["expression"] == "0 6 1 * *"
    assert dag.timetable.serialize()["timezone"] == "Asia/Tokyo"
    assert dag.get_task("month_window").downstream_task_ids == {"choose_sources"}
    assert set(dagbag.dags["gogoku_dataset"].task_ids) - {"validate_params"} == set(dag.task_ids) - {"month_window"}
    assert [a.name for a in dag.get_task("publish_dataset").outlets] == ["gogoku_datasets"]


def test_hpo_graph(dagbag) -> None:
    dag = dagbag.dags["gogoku_hpo"]
    assert dag.schedule is None
    workers = dag.get_task("hpo_worker")
    assert type(workers).__name__ == "MappedOperator"
    assert workers.upstream_task_ids == {"prepare_search", "worker_commands", "plan_search"}
    assert workers.partial_kwargs["profile"] == "{{ ti.xcom_pull(task_ids='plan_search')['profile'] }}"
    assert dag.get_task("best_config").upstream_task_ids == {"prepare_search", "hpo_worker"}


@pytest.mark.parametrize("runner", ["local", "kubernetes", "gke", "isolated", "slurm"])
def test_one_dag_version_whatever_the_runner_variable(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """The runner is read when a task runs, never while the file is parsed: the serialized DAGs are
    identical whatever the Variable says (a flip mid-run creates no new DAG version)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    def serialized(value: str) -> dict[str, str]:
        monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", value)
        bag = DagBag(dag_folder=str(DAGS))
        assert bag.import_errors == {}
        return {d: str(DagSerialization.to_dict(dag)) for d, dag in bag.dags.items()}

    assert serialized(runner) == serialized("local")
    bag = DagBag(dag_folder=str(DAGS))
    cli_tasks = {
        "gogoku_cache_refresh": [f"refresh_{s}" for s in SOURCES],
        "gogoku_dataset": [*(f"fetch_{s}" for s in SOURCES), "futures_features", "build_dataset", "validate_dataset"],
        "gogoku_training": ["train"],
    }
    for dag_id, task_ids in cli_tasks.items():
        for task_id in task_ids:
            task = bag.dags[dag_id].get_task(task_id)
            assert type(task).__name__ == "GogokuOperator", (dag_id, task_id)
            assert task.runner == "{{ var.value.get('gogoku_runner', 'local') }}"
    folds = bag.dags["gogoku_training"].get_task("train_fold")  # mapped: one instance per fold
    assert type(folds).__name__ == "MappedOperator" and folds.operator_class.__name__ == "GogokuOperator"
