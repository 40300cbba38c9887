"""gogoku_cache_refresh: bring the J-Quants raw cache up to date every morning at 08:00 Tokyo.

- `market_window`: the run's market date is its Tokyo date (08:00 JST is 23:00 UTC the day
  before, so never the UTC `ds`), or the `date` param of a manual run. Off business days (JPX
  calendar) the run stops here and every other task is skipped. Otherwise the window is
  [end - window_days, end], end = the last session closed before that morning.
- `choose_sources`: the sources the plan tier (Variable `gogoku_plan_tier`) may fetch: TOPIX from
  light up, futures on premium only; the others are skipped.
- `refresh_<source>`: `gogoku cache refresh --sources <source> --start --end`, one per source, in
  the pool `jquants_api`; only missing or stale ranges reach the API.
- `publish_market_data`: once every chosen source is refreshed, an event of the asset
  `gogoku_market_data` whose extra carries the Tokyo `market_date` and the refreshed window
  (`end` = the last closed session): `gogoku_daily` runs on it.

A scheduled run not done by 08:45 JST raises a deadline alert (gogoku_airflow/deadlines.py).

Params: `window_days` (calendar days re-checked each run; widen it to back-fill a gap),
`date` (YYYY-MM-DD, a market date for a manual run).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from gogoku_airflow.assets import MARKET_DATA
from gogoku_airflow.deadlines import morning_deadline
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import date_param
from gogoku_airflow.plans import SOURCES
from gogoku_airflow.runners import cache_refresh_task

WINDOW_START = "{{ ti.xcom_pull(task_ids='market_window')['start'] }}"
WINDOW_END = "{{ ti.xcom_pull(task_ids='market_window')['end'] }}"


@dag(
    schedule=CronTriggerTimetable("0 8 * * *", timezone="Asia/Tokyo"),
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(hours=2)),
    tags=["gogoku", "jquants", "cache"],
    deadline=morning_deadline(8, 45, "the morning cache refresh did not finish by 08:45 JST"),
    params={
        "window_days": Param(
            30, type="integer", minimum=1, maximum=3650,
            description="Calendar days before the market date to check and fill in the cache.",
        ),
        "date": date_param("Market date (YYYY-MM-DD) of a manual run; empty: the run's own date in Tokyo.",
                           optional=True),
    },
    doc_md=__doc__,
)
def gogoku_cache_refresh() -> None:
    @task.short_circuit
    def market_window(**context: Any) -> dict[str, str] | None:
        from gogoku_airflow.market_date import refresh_window

        params = context["params"]
        moment = context.get("logical_date") or context["dag_run"].run_after
        return refresh_window(moment, params.get("date"), int(params["window_days"]))

    @task.branch
    def choose_sources() -> list[str]:
        from gogoku_airflow.connection import variable_plan_tier
        from gogoku_airflow.plans import sources_for_plan

        return [f"refresh_{source}" for source in sources_for_plan(variable_plan_tier())]

    @task(outlets=[MARKET_DATA], trigger_rule="none_failed_min_one_success")
    def publish_market_data(window: dict[str, str], **context: Any) -> dict[str, Any]:
        """The asset event that starts the day's predictions: which market date, which data."""
        from gogoku_airflow.connection import variable_plan_tier

        extra = {**window, "plan": variable_plan_tier()}
        context["outlet_events"][MARKET_DATA].extra = extra
        return extra

    window = market_window()
    refreshes = [cache_refresh_task(f"refresh_{s}", s, WINDOW_START, WINDOW_END) for s in SOURCES]
    window >> choose_sources() >> refreshes
    refreshes >> publish_market_data(window)


gogoku_cache_refresh()
