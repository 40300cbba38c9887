"""The DAGs under the real scheduler of a local deployment (conftest.py, sched_harness.py), driven
through the REST API with the official client, against a `gogoku sim serve` process.

One deployment serves the whole module (a fresh PostgreSQL database, LocalExecutor, api-server,
scheduler, dag-processor, triggerer); the tests run in file order and later ones reuse what earlier
ones left (the cache, the datasets). Every wait is bounded and fails with the run's task states and
the tail of the failed task's log.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from airflow_client.client.exceptions import ApiException
from sched_harness import (
    REFRESH_DAG,
    AirflowRest,
    Deployment,
    measure_refresh_rate,
    psql,
)

from gogoku_airflow.plans import SOURCES, sources_for_plan

pytestmark = pytest.mark.scheduler

DATASET_DAG, TRAINING_DAG, HPO_DAG = "gogoku_dataset", "gogoku_training", "gogoku_hpo"
FREE = set(sources_for_plan("free"))
TOKYO = dt.timezone(dt.timedelta(hours=9))
# Two half-year datasets on the free plan (the training overrides of the deployment fit them).
RANGE_A = {"start": "2024-07-01", "end": "2024-12-30", "plan_tier": "free"}
RANGE_B = {"start": "2024-07-08", "end": "2025-01-10", "plan_tier": "free"}
HPO_OVERRIDES = ["horizons=[1,5]", "splits.n_splits=2", "splits.min_train=40", "splits.min_test=20",
                 "splits.embargo=5", "validation.embargo=5", "model.training.seq_len=5", "model.graph.lookback=20",
                 "model.graph.min_obs=10",
                 "model.training.phases=[{name:baseline,epochs:1,adaptive_norm:false,gat:false}]"]


def run_type(run: Any) -> str:
    return str(getattr(run.run_type, "value", run.run_type))


def business_days(start: str, end: str) -> list[dt.date]:
    from gogoku.calendar import business_days as jpx_days

    return jpx_days(dt.date.fromisoformat(start), dt.date.fromisoformat(end))


def api_error(call: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        call()
    return info.value


@pytest.fixture(scope="module")
def manual_refresh(rest: AirflowRest, refresh_dag: str | None) -> str:
    """A REST-triggered refresh for the market date 2025-01-08 over 5 days, finished."""
    run_id = rest.trigger(REFRESH_DAG, {"date": "2025-01-08", "window_days": 5})
    rest.wait_run(REFRESH_DAG, run_id, 240)
    return run_id


# ---------------------------------------------------------------- switching the refresh on
def test_unpausing_the_refresh_runs_the_latest_morning(rest: AirflowRest, deployment: Deployment,
                                                       refresh_dag: str | None) -> None:
    """catchup=False: the scheduler starts the run of the latest 08:00 Tokyo at once; a run that ends after
    08:45 JST on its market date raises the deadline alert (in the triggerer: deadlines need the scheduler)."""
    assert refresh_dag is not None, "no scheduled run after unpausing gogoku_cache_refresh"
    run = rest.runs.get_dag_run(REFRESH_DAG, refresh_dag)
    assert rest.run_state(REFRESH_DAG, refresh_dag) == "success"
    fired = run.logical_date.astimezone(TOKYO)
    assert (fired.hour, fired.minute) == (8, 0)
    deadline = dt.datetime.combine(fired.date(), dt.time(8, 45), TOKYO)
    if run.end_date > deadline:  # the usual case: the tests do not run between 08:00 and 08:45 in Tokyo

        def missed() -> list[dict[str, Any]]:
            return [a for a in deployment.alerts() if a["kind"] == "deadline_missed" and a.get("run_id") == refresh_dag]

        alert = rest.wait_for("the deadline alert of the morning run", missed, 60,
                              lambda: json.dumps(deployment.alerts(), indent=1) + "\n" + deployment.log_tails())[0]
        assert alert["dag_id"] == REFRESH_DAG and "08:45" in alert["message"]
        assert dt.datetime.fromisoformat(alert["deadline"]) == deadline


# ---------------------------------------------------------------- a: params through the REST API
def test_rest_trigger_with_valid_params_refreshes(rest: AirflowRest, deployment: Deployment,
                                                   manual_refresh: str) -> None:
    run_id = manual_refresh
    states = rest.states(REFRESH_DAG, run_id)
    assert {t for t, s in states.items() if s == "success"} == {
        "market_window", "choose_sources", "publish_market_data", *(f"refresh_{s}" for s in FREE)}
    assert {t for t, s in states.items() if s == "skipped"} == {f"refresh_{s}" for s in set(SOURCES) - FREE}
    window = rest.xcom(REFRESH_DAG, run_id, "market_window")
    assert window == {"market_date": "2025-01-08", "start": "2025-01-02", "end": "2025-01-07"}
    entry = rest.xcom(REFRESH_DAG, run_id, "refresh_daily_quotes")["sources"]["daily_quotes"]
    frame = pl.read_parquet(entry["uri"])
    assert Path(entry["uri"]).is_relative_to(deployment.data_root)
    assert frame.height == entry["rows"] > 0
    assert sorted(frame["Date"].unique()) == business_days("2025-01-02", "2025-01-07")


@pytest.mark.parametrize(("dag_id", "conf", "param"), [
    (REFRESH_DAG, {"window_days": 0}, "window_days"),
    (REFRESH_DAG, {"date": "2025/01/08"}, "date"),
    (DATASET_DAG, {"start": "2024-07-01", "end": "2024-12-30", "plan_tier": "gold"}, "plan_tier"),
    (DATASET_DAG, {"start": "01-07-2024", "end": "2024-12-30"}, "start"),
])
def test_rest_trigger_with_invalid_params_is_refused(rest: AirflowRest, refresh_dag: str | None, dag_id: str,
                                                     conf: dict[str, Any], param: str) -> None:
    before = {r.dag_run_id for r in rest.dag_runs(dag_id)}
    error = api_error(lambda: rest.trigger(dag_id, conf))
    assert error.status == 400, error
    assert param in str(error.body), error.body
    assert {r.dag_run_id for r in rest.dag_runs(dag_id)} == before  # no run created


# ---------------------------------------------------------------- b: a backfill over a holiday weekend
def test_backfill_skips_the_weekend_and_the_holiday(rest: AirflowRest, deployment: Deployment,
                                                    refresh_dag: str | None) -> None:
    """Fri 2025-01-10 .. Tue 2025-01-14 at 08:00 Tokyo (tz-aware bounds): Sat, Sun and Mon 13 (Coming of Age
    Day) skip with a log line; Fri and Tue refresh the sessions before them."""
    from airflow_client.client.models.reprocess_behavior import ReprocessBehavior

    first, last = dt.datetime(2025, 1, 10, 8, tzinfo=TOKYO), dt.datetime(2025, 1, 14, 8, tzinfo=TOKYO)
    body = rest.client.BackfillPostBody(dag_id=REFRESH_DAG, from_date=first, to_date=last,
                                        dag_run_conf={"window_days": 3}, max_active_runs=5,
                                        reprocess_behavior=ReprocessBehavior.NONE)
    backfill = rest.backfills.create_backfill(body)

    def runs() -> list[Any]:
        return [r for r in rest.dag_runs(REFRESH_DAG) if run_type(r) == "backfill"]

    found = rest.wait_for("5 backfill runs", lambda: len(runs()) == 5 and runs(), 60,
                          lambda: str([(r.dag_run_id, run_type(r)) for r in rest.dag_runs(REFRESH_DAG)]))
    for run in found:
        rest.wait_run(REFRESH_DAG, run.dag_run_id, 300)
    days = {run.logical_date.astimezone(TOKYO).date(): run.dag_run_id for run in found}
    assert sorted(days) == [dt.date(2025, 1, d) for d in range(10, 15)]  # one run per day
    rest.wait_for("the backfill completed", lambda: rest.backfills.get_backfill(backfill.id).completed_at, 60,
                  lambda: str(rest.backfills.get_backfill(backfill.id)))
    closed = {dt.date(2025, 1, 11): "weekend", dt.date(2025, 1, 12): "weekend",
              dt.date(2025, 1, 13): "holiday: Coming of Age Day"}
    for day, reason in closed.items():
        states = rest.states(REFRESH_DAG, days[day])
        assert states.pop("market_window") == "success"
        assert set(states.values()) == {"skipped"}, (day, states)
        log = rest.log(REFRESH_DAG, days[day], "market_window", 1)
        assert f"{day} ({day:%A} in Tokyo) is not a JPX business day ({reason})" in log, log[-3000:]
    for day, end in ((dt.date(2025, 1, 10), "2025-01-09"), (dt.date(2025, 1, 14), "2025-01-10")):
        run_id = days[day]
        states = rest.states(REFRESH_DAG, run_id)
        assert all(states[f"refresh_{s}"] == "success" for s in FREE), states
        assert rest.xcom(REFRESH_DAG, run_id, "market_window")["end"] == end
        entry = rest.xcom(REFRESH_DAG, run_id, "refresh_daily_quotes")["sources"]["daily_quotes"]
        assert dt.date.fromisoformat(end) in set(pl.read_parquet(entry["uri"])["Date"].to_list())
        assert rest.xcom(REFRESH_DAG, run_id, "publish_market_data")["market_date"] == day.isoformat()


# ---------------------------------------------------------------- c: datasets -> asset events -> training
@pytest.fixture(scope="module")
def datasets(rest: AirflowRest) -> dict[str, dict[str, Any]]:
    """Two gogoku_dataset runs at once (free plan), with gogoku_training unpaused: run id -> its asset event."""
    rest.unpause(TRAINING_DAG)
    rest.unpause(DATASET_DAG)
    runs = {rest.trigger(DATASET_DAG, RANGE_A): RANGE_A, rest.trigger(DATASET_DAG, RANGE_B): RANGE_B}
    for run_id in runs:
        rest.wait_run(DATASET_DAG, run_id, 420)
    return {run_id: rest.xcom(DATASET_DAG, run_id, "publish_dataset") for run_id in runs}


def test_two_datasets_at_once_each_train_their_own_model(rest: AirflowRest, deployment: Deployment,
                                                         datasets: dict[str, dict[str, Any]]) -> None:
    uris = set()
    for event in datasets.values():
        params = RANGE_A if event["start"] == RANGE_A["start"] else RANGE_B
        assert (event["plan"], event["start"], event["end"]) == ("free", params["start"], params["end"])
        assert Path(event["uri"]) == deployment.data_root / "datasets" / "ml_dataset_free_{}_{}.parquet".format(
            *(params[k].replace("-", "") for k in ("start", "end")))
        assert pl.read_parquet(event["uri"]).height == event["rows"] > 0
        uris.add(event["uri"])
    assert len(uris) == 2
    # The asset events, one per dataset run, as the scheduler recorded them.
    events = [e for e in rest.assets.get_asset_events(source_dag_id=DATASET_DAG, limit=100).asset_events
              if e.source_run_id in datasets]
    assert sorted(e.source_run_id for e in events) == sorted(datasets)
    for event in events:
        assert event.name == "gogoku_datasets" and event.source_task_id == "publish_dataset"
        assert event.extra == datasets[event.source_run_id]

    def training_runs() -> list[Any] | None:
        seen = [e for e in rest.assets.get_asset_events(source_dag_id=DATASET_DAG, limit=100).asset_events
                if e.source_run_id in datasets]
        created = {r.run_id for e in seen for r in e.created_dagruns if r.dag_id == TRAINING_DAG}
        covered = {e.extra["uri"] for e in seen if any(r.dag_id == TRAINING_DAG for r in e.created_dagruns)}
        return sorted(created) if covered == uris else None

    run_ids = rest.wait_for("training runs for both datasets", training_runs, 120,
                            lambda: str([(r.dag_run_id, run_type(r)) for r in rest.dag_runs(TRAINING_DAG)]))
    for run_id in run_ids:
        rest.wait_run(TRAINING_DAG, run_id, 420)
        run = rest.runs.get_dag_run(TRAINING_DAG, run_id)
        assert run_type(run) == "asset_triggered"
        own = sorted(rest.runs.get_upstream_asset_events(TRAINING_DAG, run_id).asset_events, key=lambda e: e.timestamp)
        assert own and {e.extra["uri"] for e in own} <= uris
        result = rest.xcom(TRAINING_DAG, run_id, "train")
        # Its own event's dataset (the newest, should two have coalesced into one run), never another's.
        assert result["dataset"] == own[-1].extra["uri"], (run_id, result["dataset"], [e.extra["uri"] for e in own])
        assert Path(result["model_dir"]).parent == deployment.data_root / "models"
        assert len(json.loads(Path(result["metrics"]).read_text())["folds"]) == 2 == result["n_folds"]
        assert set(result["headline"]) == {"1d", "5d"}
        assert rest.states(TRAINING_DAG, run_id)["train_fold"] == "skipped"  # LightGBM trains in `train`


def test_asset_events_close_together_are_all_consumed(rest: AirflowRest, deployment: Deployment,
                                                      datasets: dict[str, dict[str, Any]]) -> None:
    """Both datasets' events again, through POST /api/v2/assets/events a few ms apart (before the scheduler
    queues a run): every event is consumed by a gogoku_training run. Airflow 3.3.2's own asset manager
    leaves the second one behind, neither consumed nor queued (include/gogoku_airflow/asset_manager.py);
    the deployment's coalesces them into one run, which trains the newest dataset."""
    asset = next(a for a in rest.assets.get_assets(name_pattern="gogoku_datasets").assets if a.name == "gogoku_datasets")
    before = {r.dag_run_id for r in rest.dag_runs(TRAINING_DAG)}
    ordered = sorted(datasets.values(), key=lambda e: e["start"])
    posted = [rest.assets.create_asset_event(rest.client.CreateAssetEventsBody(asset_id=asset.id, extra=extra)).id
              for extra in ordered]

    def consumed() -> dict[int, str] | None:
        runs = {}
        for event in rest.assets.get_asset_events(asset_id=asset.id, limit=100).asset_events:
            created = [r.run_id for r in event.created_dagruns if r.dag_id == TRAINING_DAG]
            if event.id in posted and created:
                runs[event.id] = created[0]
        return runs if set(runs) == set(posted) else None

    by_event = rest.wait_for("a training run for each posted event", consumed, 60,
                             lambda: str([(r.dag_run_id, run_type(r)) for r in rest.dag_runs(TRAINING_DAG)]))
    assert not set(by_event.values()) & before
    for run_id in sorted(set(by_event.values())):
        rest.wait_run(TRAINING_DAG, run_id, 420)
        own = sorted(rest.runs.get_upstream_asset_events(TRAINING_DAG, run_id).asset_events, key=lambda e: e.timestamp)
        assert {e.id for e in own} == {e for e, r in by_event.items() if r == run_id}
        assert rest.xcom(TRAINING_DAG, run_id, "train")["dataset"] == own[-1].extra["uri"]


# ---------------------------------------------------------------- d: retries and alerts
def test_injected_fault_fails_a_try_and_the_retry_succeeds(rest: AirflowRest, deployment: Deployment,
                                                           refresh_dag: str | None) -> None:
    """The simulator answers (almost) every request with a 5xx: refresh tasks fail their first try after
    the client's retries; the faults end as soon as one is up for retry, and the task's retry (try 2,
    a few seconds later: GOGOKU_RETRY_DELAY_S) succeeds. The run ends in success: no alert. Meanwhile a
    dataset run with `end` before `start` fails for good, without retries: one alert line."""
    sim = deployment.simulator
    rest.unpause(DATASET_DAG)  # schedule=None: no run of its own
    sim.faults(error=0.99)
    try:
        run_id = rest.trigger(REFRESH_DAG, {"date": "2025-02-05", "window_days": 3})
        bad = rest.trigger(DATASET_DAG, {"start": "2024-06-01", "end": "2024-01-01"})

        def retrying() -> list[str]:
            return [t for t, s in rest.states(REFRESH_DAG, run_id).items() if s == "up_for_retry"]

        retried = rest.wait_for("a refresh task up for retry", retrying, 180, lambda: rest.report(REFRESH_DAG, run_id),
                                every_s=0.5)
    finally:
        sim.faults()
    assert sim.stats()["faults"].get("error", 0) > 0
    rest.wait_run(REFRESH_DAG, run_id, 240)
    tis = {ti.task_id: ti for ti in rest.task_instances(REFRESH_DAG, run_id)}
    for task_id in retried:
        assert (str(tis[task_id].state.value), tis[task_id].try_number) == ("success", 2), task_id
        first_try = rest.log(REFRESH_DAG, run_id, task_id, 1)
        assert "still failing after 7 attempts" in first_try, first_try[-3000:]
    assert all(str(tis[f"refresh_{s}"].state.value) == "success" for s in FREE)
    rest.wait_run(DATASET_DAG, bad, 120, expect="failed")
    assert rest.states(DATASET_DAG, bad)["validate_params"] == "failed"
    # Alerts: one line for the task that failed for good, naming dag, task, run and cause; none for the retried run.
    alerts = deployment.alerts()
    assert not [a for a in alerts if a.get("run_id") == run_id], alerts
    failed = [a for a in alerts if a.get("run_id") == bad]
    assert len(failed) == 1, alerts
    assert (failed[0]["kind"], failed[0]["dag_id"], failed[0]["task_id"]) == ("task_failed", DATASET_DAG, "validate_params")
    assert "is before param 'start'" in failed[0]["exception"]


# ---------------------------------------------------------------- e: a cleared task resumes from the cache
def test_cleared_task_reruns_from_the_cache(rest: AirflowRest, deployment: Deployment, manual_refresh: str) -> None:
    sim = deployment.simulator
    task_id = "refresh_daily_quotes"
    before = rest.xcom(REFRESH_DAG, manual_refresh, task_id)
    assert before["api_calls"] > 0
    sim.reset()
    from airflow_client.client.models.clear_task_instances_body_task_ids_inner import (
        ClearTaskInstancesBodyTaskIdsInner as TaskIdsItem,
    )

    body = rest.client.ClearTaskInstancesBody(dry_run=False, dag_run_id=manual_refresh, task_ids=[TaskIdsItem(task_id)],
                                              only_failed=False, reset_dag_runs=True)
    cleared = rest.tis.post_clear_task_instances(REFRESH_DAG, body).task_instances
    assert [ti.task_id for ti in cleared] == [task_id]

    def rerun() -> bool:
        ti = rest.tis.get_task_instance(REFRESH_DAG, manual_refresh, task_id)
        return ti.try_number == 2 and str(getattr(ti.state, "value", ti.state)) == "success"

    rest.wait_for(f"{task_id} re-run", rerun, 180, lambda: rest.report(REFRESH_DAG, manual_refresh))
    rest.wait_run(REFRESH_DAG, manual_refresh, 120)
    after = rest.xcom(REFRESH_DAG, manual_refresh, task_id)
    entry = after["sources"]["daily_quotes"]
    # Every day of the window is final in the cache: a complete hit, no request to the API.
    assert after["api_calls"] == 0 and entry["hits"] == "complete", after
    assert sim.stats()["total"] == 0
    # The same rows as the first try's (the file may since hold more: later runs filled the cache around it).
    first = before["sources"]["daily_quotes"]
    assert entry["rows"] == first["rows"] > 0
    assert Path(entry["uri"]).parent == Path(first["uri"]).parent == deployment.data_root / "raw" / "daily_quotes"
    window = rest.xcom(REFRESH_DAG, manual_refresh, "market_window")
    days = pl.read_parquet(entry["uri"]).filter(pl.col("Date").is_between(
        dt.date.fromisoformat(window["start"]), dt.date.fromisoformat(window["end"])))
    assert days.height == first["rows"] and sorted(days["Date"].unique()) == business_days(window["start"], window["end"])


# ---------------------------------------------------------------- f: HPO workers in parallel
def test_hpo_two_workers_share_one_postgres_study(rest: AirflowRest, deployment: Deployment,
                                                  datasets: dict[str, dict[str, Any]]) -> None:
    dataset = next(e["uri"] for e in datasets.values() if e["start"] == RANGE_A["start"])
    study = "sched_hpo"
    rest.unpause(HPO_DAG)
    run_id = rest.trigger(HPO_DAG, {"dataset": dataset, "plan_tier": "free", "model": "atft_tiny", "study": study,
                                    "n_trials": 2, "workers": 2, "overrides": HPO_OVERRIDES})
    rest.wait_run(HPO_DAG, run_id, 480)
    workers = [ti for ti in rest.task_instances(HPO_DAG, run_id) if ti.task_id == "hpo_worker"]
    assert sorted((ti.map_index, str(ti.state.value)) for ti in workers) == [(0, "success"), (1, "success")]
    # The two workers ran at the same time (parallel tasks), each with its share of the trials.
    first, second = sorted(workers, key=lambda ti: ti.start_date)
    assert second.start_date < first.end_date
    summary = rest.xcom(HPO_DAG, run_id, "best_config")
    assert summary["study"] == study and summary["best_overrides"]
    model_yaml = deployment.data_root / "hpo" / study / "model.yaml"
    assert model_yaml.is_file() and summary["model_config"].endswith("model.yaml")
    assert (deployment.data_root / "hpo" / study / "best.json").is_file()
    # The study lives in PostgreSQL: 2 trials, each finished or pruned.
    states = psql("SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                  f"WHERE s.study_name = '{study}' ORDER BY t.number", database=deployment.hpo_database).split()
    assert len(states) == 2 and set(states) <= {"COMPLETE", "PRUNED"}, states


# ---------------------------------------------------------------- g: one request budget for every task
def test_refresh_tasks_share_the_api_budget(rest: AirflowRest, deployment: Deployment,
                                            refresh_dag: str | None) -> None:
    """4 refresh tasks at once on one budget: no 429, every request answered, and while the tasks
    wanted the API (two or more of them for most of the requests) the answers came within 10 % of the
    plan's rate (the limiter aims 5 % below it); the seconds when no task was asking (a task's process
    starting) are left out of that rate, not out of `overall_rate_vs_plan`."""
    figures = measure_refresh_rate(rest, deployment.simulator)
    print(json.dumps(figures, indent=2))
    assert figures["most_refresh_tasks_at_once"] == figures["scenario"]["pool_slots"] == 4
    assert figures["http_429"] == 0, figures
    assert figures["requests"] == figures["http_200"] == sum(figures["api_calls_per_task"].values())
    assert figures["tasks_asking"] == len([t for t, n in figures["api_calls_per_task"].items() if n]), figures
    assert figures["shared_requests"] >= figures["requests"] / 2, figures
    assert 0.9 <= figures["rate_vs_plan"] <= 1.0, figures


# ---------------------------------------------------------------- h: a backfill of the daily predictions
DAILY_DAG = "gogoku_daily"
PREDICTIONS_ASSET = "gogoku_predictions"


@pytest.fixture(scope="module")
def champion(rest: AirflowRest, datasets: dict[str, dict[str, Any]]) -> str:
    """A gogoku_training run on the dataset that ends 2025-01-10 with `promote=force`: its model is the champion."""
    dataset = next(e["uri"] for e in datasets.values() if e["end"] == RANGE_B["end"])
    run_id = rest.trigger(TRAINING_DAG, {"dataset": dataset, "model": "lightgbm", "promote": "force"})
    rest.wait_run(TRAINING_DAG, run_id, 420)
    promoted = rest.xcom(TRAINING_DAG, run_id, "promote_model")
    assert promoted["promoted"] is True and promoted["champion"] == promoted["model"], promoted
    assert Path(rest.xcom(TRAINING_DAG, run_id, "train")["model_dir"]).name == promoted["model"]
    return promoted["model"]


def test_daily_backfill_over_a_holiday_week(rest: AirflowRest, deployment: Deployment, refresh_dag: str | None,
                                            champion: str) -> None:
    """`POST /api/v2/backfills` of gogoku_daily (scheduled on the refresh's asset OR 08:30 Tokyo: the cron
    part makes it backfillable), Wed 2025-01-08 .. Tue 2025-01-14 at 08:30 Tokyo, no conf: each run
    predicts as of the session before its market date with the champion. The business days publish
    predictions/<D>.parquet and a gogoku_predictions event; Sat, Sun and Mon 13 (Coming of Age Day)
    stop at `resolve_day` with a log line naming the date and the reason, the rest skipped.

    `monitor` reads realized returns up to 45 days past the newest prediction, as far as the cache has
    them (gogoku.monitor.run_monitor): a refresh first fills the cache over those weeks, as a
    production deployment's daily refreshes have. A backfill runs only while its DAG is unpaused:
    unpausing also makes the scheduler start the run of the latest 08:30 Tokyo (catchup off; without
    the lookback of raw data it needs, that run fails); the DAG is paused again once every run has
    ended, so that later refreshes' asset events start no predictions."""
    from airflow_client.client.models.reprocess_behavior import ReprocessBehavior

    refreshed = rest.trigger(REFRESH_DAG, {"date": "2025-02-26", "window_days": 56})  # 2024-12-31 .. 2025-02-25
    rest.wait_run(REFRESH_DAG, refreshed, 300)

    first, last = dt.datetime(2025, 1, 8, 8, 30, tzinfo=TOKYO), dt.datetime(2025, 1, 14, 8, 30, tzinfo=TOKYO)
    business = {dt.date(2025, 1, d): dt.date(2025, 1, d - 1) for d in (8, 9, 10)}  # market date -> D
    business[dt.date(2025, 1, 14)] = dt.date(2025, 1, 10)
    closed = {dt.date(2025, 1, 11): "weekend", dt.date(2025, 1, 12): "weekend",
              dt.date(2025, 1, 13): "holiday: Coming of Age Day"}
    body = rest.client.BackfillPostBody(dag_id=DAILY_DAG, from_date=first, to_date=last, max_active_runs=3,
                                        reprocess_behavior=ReprocessBehavior.NONE)
    rest.unpause(DAILY_DAG)
    try:
        backfill = rest.backfills.create_backfill(body)

        def runs() -> list[Any]:
            return [r for r in rest.dag_runs(DAILY_DAG) if run_type(r) == "backfill"]

        found = rest.wait_for("7 backfill runs", lambda: len(runs()) == 7 and runs(), 60,
                              lambda: str([(r.dag_run_id, run_type(r)) for r in rest.dag_runs(DAILY_DAG)]))
        for run in found:
            rest.wait_run(DAILY_DAG, run.dag_run_id, 420)
        rest.wait_for("the backfill completed", lambda: rest.backfills.get_backfill(backfill.id).completed_at, 60,
                      lambda: str(rest.backfills.get_backfill(backfill.id)))
        # The scheduled run of the latest 08:30 ends too (it fails at daily_features: no lookback that recent).
        for run in rest.dag_runs(DAILY_DAG):
            rest.wait_run(DAILY_DAG, run.dag_run_id, 300, expect=None)
    finally:
        rest.pause(DAILY_DAG)
    moments = {run.logical_date.astimezone(TOKYO): run.dag_run_id for run in found}
    assert {(m.hour, m.minute) for m in moments} == {(8, 30)}
    days = {m.date(): run_id for m, run_id in moments.items()}
    assert sorted(days) == sorted([*business, *closed])  # one run per calendar day of the week

    for day, reason in closed.items():
        states = rest.states(DAILY_DAG, days[day])
        assert states.pop("resolve_day") == "success"
        assert set(states.values()) == {"skipped"}, (day, states)
        log = rest.log(DAILY_DAG, days[day], "resolve_day", 1)
        assert f"{day} ({day:%A} in Tokyo) is not a JPX business day ({reason})" in log, log[-3000:]

    events = {e.source_run_id: e for e in rest.assets.get_asset_events(source_dag_id=DAILY_DAG, limit=100).asset_events
              if e.source_run_id in days.values()}
    assert set(events) == {days[d] for d in business}  # one predictions event per business day, none else
    for market_date, feature_date in business.items():
        run_id = days[market_date]
        states = rest.states(DAILY_DAG, run_id)
        assert set(states.values()) == {"success"}, (market_date, states)
        resolved = rest.xcom(DAILY_DAG, run_id, "resolve_day")
        assert resolved == {"date": feature_date.isoformat(), "for_session": market_date.isoformat(), "model": ""}
        predicted = rest.xcom(DAILY_DAG, run_id, "predict")
        path = deployment.data_root / "predictions" / f"{feature_date}.parquet"
        assert Path(predicted["uri"]) == path and path.is_file(), predicted
        assert (predicted["model"], predicted["date"], predicted["for_session"]) == (
            champion, feature_date.isoformat(), market_date.isoformat())
        frame = pl.read_parquet(path)
        assert frame.height == predicted["listed"] > 0 and 0 < predicted["scored"] <= frame.height
        assert set(frame["Date"].to_list()) == {feature_date} and set(frame["model"].to_list()) == {champion}
        event = events[run_id]
        assert event.name == PREDICTIONS_ASSET and event.source_task_id == "publish_predictions"
        assert (event.extra["uri"], event.extra["date"], event.extra["model"]) == (
            str(path), feature_date.isoformat(), champion)
