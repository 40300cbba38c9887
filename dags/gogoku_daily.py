"""gogoku_daily: the day's point-in-time predictions, published before the 09:00 Tokyo open.

Runs on the asset `gogoku_market_data` that the 08:00 refresh publishes once the previous
session's data is in the cache (its event names the Tokyo market date and `end`, the last closed
session), and on a guard schedule at 08:30 Tokyo that catches a morning whose refresh event never
came; the guard finds the day already published and stops when the asset run did its job. The
schedule also makes `airflow backfill create` produce point-in-time predictions for past dates.

- `resolve_day`: the feature date D (the `date` param, else the event's `end`, else the previous
  business day of the run's Tokyo market date) and the model (the `model` param or the backfill's
  conf, else the registry's champion). Off business days, or when D's predictions are already
  published by this model, it stops (logging the date and the reason) and the rest is skipped.
- `daily_features`: `gogoku features daily --date D`: the features of D from the raw cache (only the
  history the feature windows need, not a dataset rebuild), with the sessions before it that a
  sequence model reads.
- `predict`: `gogoku predict --date D --features <URI> [--model M]`: a score and rank per horizon for
  every stock listed on D (a null score with its reason where a stock lacks the history).
- `validate_predictions`: coverage of the listed universe, no NaN, the day's score spread within the
  bounds of the model's own walk-forward predictions.
- `publish_predictions`: the event of the asset `gogoku_predictions` with the file's URI.
- `monitor`: `gogoku monitor`: realized skill of past predictions, drift; its alerts are recorded.

A deadline alert fires the gogoku notifier when a run has not finished by 08:45 Tokyo on its market
date (backfill and manual runs have no deadline; GOGOKU_DEADLINE_ALERTS=0 leaves it out, as
`make run` and the `dags test` suites must: see gogoku_airflow/deadlines.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from gogoku_airflow.assets import MARKET_DATA, PREDICTIONS
from gogoku_airflow.deadlines import morning_deadline
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import date_param
from gogoku_airflow.runners import gogoku_task

log = logging.getLogger("airflow.task")
DAY = "{{ ti.xcom_pull(task_ids='resolve_day')['date'] }}"
MODEL_OPTION = "{% set m = ti.xcom_pull(task_ids='resolve_day')['model'] %}{{ '--model=' ~ m if m else '' }}"


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 8 * * *", timezone="Asia/Tokyo"), assets=[MARKET_DATA]),
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30), retry_delay=timedelta(minutes=1)),
    deadline=morning_deadline(8, 45, "the day's predictions were not published by 08:45 JST"),
    tags=["gogoku", "predictions", "daily"],
    params={
        "date": date_param("Feature date D (YYYY-MM-DD): predict as of its close; empty: from the run.", optional=True),
        "model": Param(None, type=["null", "string"], description="A registered model id; empty: the champion."),
    },
    doc_md=__doc__,
)
def gogoku_daily() -> None:
    @task.short_circuit(inlets=[PREDICTIONS])
    def resolve_day(**context: Any) -> dict[str, str] | None:
        from gogoku_airflow.market_date import prediction_day

        return prediction_day(context)

    features = gogoku_task("daily_features", ["features", "daily", "--date", DAY])
    predict = gogoku_task("predict", ["predict", "--date", DAY, "--features",
                                      "{{ ti.xcom_pull(task_ids='daily_features')['uri'] }}", MODEL_OPTION])
    validate = gogoku_task("validate_predictions",
                           ["predictions", "validate", "{{ ti.xcom_pull(task_ids='predict')['uri'] }}"])

    @task(outlets=[PREDICTIONS])
    def publish_predictions(result: dict[str, Any], check: dict[str, Any], **context: Any) -> dict[str, Any]:
        extra = {k: result[k] for k in ("uri", "date", "for_session", "model", "scored", "listed") if k in result}
        if check.get("uri") != result.get("uri"):
            raise ValueError(f"validated {check.get('uri')} is not the file predicted, {result.get('uri')}")
        context["outlet_events"][PREDICTIONS].extra = extra
        log.info("published %s", extra)
        return extra

    monitor = gogoku_task("monitor", ["monitor", "--asof", DAY])

    @task
    def record_alerts(result: dict[str, Any]) -> list[str]:
        from gogoku_airflow.alerts import forward, record

        for alert in result.get("alerts") or []:
            forward(record("monitoring", alert, report=result.get("report")))
        return list(result.get("alerts") or [])

    day = resolve_day()
    day >> features >> predict >> validate
    published = publish_predictions(predict.output, validate.output)
    published >> monitor
    record_alerts(monitor.output)


gogoku_daily()
